"""Stand-in for the WebUI's built-in scripts/xyz_grid.py ("X/Y/Z plot").

(No ``from __future__ import annotations`` here: script files are loaded without a sys.modules entry, and
dataclasses with string annotations then fail - in the WebUI too.)

Extensions find this module through ``modules.scripts.scripts_data`` (the entry whose path ends in xyz_grid.py) and
append ``AxisOption``s to ``axis_options``. ``run_axes`` (stand-in entry) runs a plot the way ``Script.run`` does:
value parsing by axis type, ``confirm``, a shallow ``copy(p)`` per cell, ``apply`` for each axis, process_images;
it returns every cell's p and Processed (no grid image is drawn).

The facts modelled: how an axis's text becomes values (comma-separated, CSV quoting; int/float ranges ``a-b``,
``a-b (+step)``, ``a-b [count]``; permutations for "Prompt order"), unset seeds on seed axes becoming random ones,
the order cells are generated in (the costliest axis outermost, then the next costliest; by default Z, Y, X), the
"Script"/"X Type"/... entries of the grid infotexts, and the settings restored after the plot.
"""

import csv
import itertools
import random
import re
from collections import namedtuple
from collections.abc import Callable
from copy import copy
from dataclasses import dataclass, field
from io import StringIO
from typing import Any

import gradio as gr
import modules.scripts as scripts
import modules.shared as shared
import numpy as np
from modules import errors, processing, sd_samplers, sd_schedulers
from modules.processing import Processed, StableDiffusionProcessingTxt2Img, process_images
from modules.shared import opts, state
from modules.ui_components import ToolButton

fill_values_symbol = "\U0001f4d2"  # 📒

AxisInfo = namedtuple("AxisInfo", ["axis", "values"])


# ---------------------------------------------------------------------------------------------------------------
# what an axis does to a cell's p (models of the apply/confirm/format helpers of the same names)


def apply_field(field: str) -> Callable:
    """Models xyz_grid.apply_field: the value is assigned to ``p.<field>``."""
    return lambda p, x, xs: setattr(p, field, x)


def apply_override(field: str, boolean: bool = False) -> Callable:
    """Models xyz_grid.apply_override: the value goes into ``p.override_settings[field]`` (as a bool - "true" in
    any case is True - when ``boolean``)."""

    def put(p, x, xs):
        p.override_settings[field] = (x.lower() == "true") if boolean else x

    return put


def apply_prompt(p, x, xs):
    """Models xyz_grid.apply_prompt (Prompt S/R): the axis's first value is replaced by ``x`` in prompt and negative
    prompt; it must occur in one of them."""
    search = xs[0]
    if search not in p.prompt and search not in p.negative_prompt:
        raise RuntimeError(f"Prompt S/R did not find {search} in prompt or negative prompt.")
    p.prompt, p.negative_prompt = (text.replace(search, x) for text in (p.prompt, p.negative_prompt))


def apply_order(p, x, xs):
    """Models xyz_grid.apply_order (Prompt order): the tokens' places in the prompt, in order of appearance, are
    filled with the tokens in the order of the permutation ``x``."""
    by_position = sorted(x, key=p.prompt.find)
    rest = p.prompt
    pieces = []
    for slot, token in enumerate(by_position):
        cut = rest.find(token)
        pieces.append(rest[:cut] + x[slot])
        rest = rest[cut + len(token) :]
    p.prompt = "".join(pieces) + rest


def confirm_samplers(p, xs):
    """Models xyz_grid.confirm_samplers: every value must name a sampler (case-insensitive)."""
    unknown = [x for x in xs if x.lower() not in sd_samplers.samplers_map]
    if unknown:
        raise RuntimeError(f"Unknown sampler: {unknown[0]}")


def do_nothing(p, x, xs):
    """Models xyz_grid.do_nothing (the "Nothing" axis)."""


def boolean_choice(reverse: bool = False) -> Callable:
    """Models xyz_grid.boolean_choice: the choices "True"/"False" ("False" first when ``reverse``)."""
    pair = ["False", "True"] if reverse else ["True", "False"]
    return lambda: list(pair)


def _rounded(x):
    return round(x, 8) if type(x) is float else x


def format_value_add_label(p, opt, x):
    """Models xyz_grid.format_value_add_label: "<label>: <value>" (floats rounded to 8 places)."""
    return f"{opt.label}: {_rounded(x)}"


def format_value(p, opt, x):
    """Models xyz_grid.format_value: the value itself (floats rounded to 8 places)."""
    return _rounded(x)


def format_value_join_list(p, opt, x):
    """Models xyz_grid.format_value_join_list."""
    return ", ".join(x)


def format_nothing(p, opt, x):
    """Models xyz_grid.format_nothing."""
    return ""


def str_permutations(x):
    """Models xyz_grid.str_permutations: the marker type meaning 'every permutation of the values'."""
    return x


def list_to_csv_string(data_list) -> str:
    """Models xyz_grid.list_to_csv_string: dropdown values as one CSV line."""
    buffer = StringIO()
    csv.writer(buffer).writerow(data_list)
    return buffer.getvalue().strip()


def csv_string_to_list_strip(data_str: str) -> list[str]:
    """Models xyz_grid.csv_string_to_list_strip: all CSV cells of the text, stripped."""
    return [cell.strip() for row in csv.reader(StringIO(data_str)) for cell in row]


# ---------------------------------------------------------------------------------------------------------------
# axis options


@dataclass
class AxisOption:
    """Models xyz_grid.AxisOption (same positional order): label, value type, apply(p, x, xs),
    format_value(p, opt, x), confirm(p, xs), cost (costlier axes are looped outermost), choices() (for the
    dropdown), prepare(text) -> values."""

    label: str
    type: Any
    apply: Callable
    format_value: Callable = format_value_add_label
    confirm: Callable | None = None
    cost: float = 0.0
    choices: Callable | None = None
    prepare: Callable | None = None


class AxisOptionImg2Img(AxisOption):
    """Models xyz_grid.AxisOptionImg2Img: an option offered on the img2img tab only."""

    is_img2img = True


class AxisOptionTxt2Img(AxisOption):
    """Models xyz_grid.AxisOptionTxt2Img: an option offered on the txt2img tab only."""

    is_img2img = False


def _sampler_names(for_img2img: bool) -> Callable:
    return lambda: [s.name for s in (sd_samplers.samplers_for_img2img if for_img2img else sd_samplers.samplers)]


_both, _t2i, _i2i = AxisOption, AxisOptionTxt2Img, AxisOptionImg2Img
_plain = {"format_value": format_value}
_flag = {"choices": boolean_choice(reverse=True)}

# (kind, label, value type, apply, extra keywords) - the v1.10.1 options that make sense in the stand-in, in the
# WebUI's order
_OPTION_TABLE = [
    (_both, "Nothing", str, do_nothing, {"format_value": format_nothing}),
    (_both, "Seed", int, apply_field("seed"), {}),
    (_both, "Var. seed", int, apply_field("subseed"), {}),
    (_both, "Var. strength", float, apply_field("subseed_strength"), {}),
    (_both, "Steps", int, apply_field("steps"), {}),
    (_t2i, "Hires steps", int, apply_field("hr_second_pass_steps"), {}),
    (_both, "CFG Scale", float, apply_field("cfg_scale"), {}),
    (_i2i, "Image CFG Scale", float, apply_field("image_cfg_scale"), {}),
    (_both, "Prompt S/R", str, apply_prompt, _plain),
    (_both, "Prompt order", str_permutations, apply_order, {"format_value": format_value_join_list}),
    (
        _t2i,
        "Sampler",
        str,
        apply_field("sampler_name"),
        {**_plain, "confirm": confirm_samplers, "choices": _sampler_names(False)},
    ),
    (
        _t2i,
        "Hires sampler",
        str,
        apply_field("hr_sampler_name"),
        {"confirm": confirm_samplers, "choices": _sampler_names(True)},
    ),
    (
        _i2i,
        "Sampler",
        str,
        apply_field("sampler_name"),
        {**_plain, "confirm": confirm_samplers, "choices": _sampler_names(True)},
    ),
    (_both, "Negative Guidance minimum sigma", float, apply_field("s_min_uncond"), {}),
    (_both, "Sigma Churn", float, apply_field("s_churn"), {}),
    (_both, "Sigma min", float, apply_field("s_tmin"), {}),
    (_both, "Sigma max", float, apply_field("s_tmax"), {}),
    (_both, "Sigma noise", float, apply_field("s_noise"), {}),
    (
        _both,
        "Schedule type",
        str,
        apply_field("scheduler"),
        {"choices": lambda: [s.label for s in sd_schedulers.schedulers]},
    ),
    (_both, "Schedule min sigma", float, apply_override("sigma_min"), {}),
    (_both, "Schedule max sigma", float, apply_override("sigma_max"), {}),
    (_both, "Schedule rho", float, apply_override("rho"), {}),
    (_both, "Eta", float, apply_field("eta"), {}),
    (_both, "Denoising", float, apply_field("denoising_strength"), {}),
    (_both, "Initial noise multiplier", float, apply_field("initial_noise_multiplier"), {}),
    (_both, "Extra noise", float, apply_override("img2img_extra_noise"), {}),
    (
        _both,
        "Always discard next-to-last sigma",
        str,
        apply_override("always_discard_next_to_last_sigma", boolean=True),
        _flag,
    ),
    (_both, "SGM noise multiplier", str, apply_override("sgm_noise_multiplier", boolean=True), _flag),
]

axis_options = [
    kind(label, kind_of_value, apply, **extra) for kind, label, kind_of_value, apply, extra in _OPTION_TABLE
]
"""Models xyz_grid.axis_options; extensions append their own."""


def _options_for_tab(is_img2img: bool) -> list[AxisOption]:
    """The options the tab's dropdown lists: the plain ones and those made for this tab."""
    return [o for o in axis_options if type(o) is AxisOption or o.is_img2img == is_img2img]


class SharedSettingsStackHelper:
    """Models xyz_grid.SharedSettingsStackHelper: the settings an axis may change (clip skip, VAE, UniPC order)
    are put back after the plot."""

    _KEPT = ("CLIP_stop_at_last_layers", "sd_vae", "uni_pc_order")

    def __enter__(self):
        self.saved = {name: getattr(opts, name) for name in self._KEPT}

    def __exit__(self, exc_type, exc_value, tb):
        opts.data.update(self.saved)


# ---------------------------------------------------------------------------------------------------------------
# axis values


def _range_pattern(number: str, tail: str) -> re.Pattern:
    return re.compile(r"\s*" + number + r"\s*-\s*" + number + tail + r"\s*")


_INT = r"([+-]?\s*\d+)"
_FLOAT = r"([+-]?\s*\d+(?:.\d*)?)"
re_range = _range_pattern(_INT, r"(?:\s*\(([+-]\d+)\s*\))?")
re_range_float = _range_pattern(_FLOAT, r"(?:\s*\(([+-]\d+(?:.\d*)?)\s*\))?")
re_range_count = _range_pattern(_INT, r"(?:\s*\[(\d+)\s*])?")
re_range_count_float = _range_pattern(_FLOAT, r"(?:\s*\[(\d+(?:.\d*)?)\s*])?")


def _expand_int(text: str) -> list:
    """'a-b' and 'a-b (+s)': a to b inclusive in steps of s; 'a-b [n]': n evenly spaced values, truncated to int."""
    stepped = re_range.fullmatch(text)
    if stepped is not None:
        first, last, step = stepped.groups()
        return list(range(int(first), int(last) + 1, int(step) if step else 1))
    counted = re_range_count.fullmatch(text)
    if counted is not None:
        first, last, count = counted.groups()
        return [int(v) for v in np.linspace(int(first), int(last), int(count) if count else 1).tolist()]
    return [text]


def _expand_float(text: str) -> list:
    """'a-b (+s)': numpy's arange from a up to b + s (exclusive); 'a-b [n]': n evenly spaced values."""
    stepped = re_range_float.fullmatch(text)
    if stepped is not None:
        first, last, step = stepped.groups()
        increment = float(step) if step else 1
        return np.arange(float(first), float(last) + increment, increment).tolist()
    counted = re_range_count_float.fullmatch(text)
    if counted is not None:
        first, last, count = counted.groups()
        return np.linspace(float(first), float(last), int(count) if count else 1).tolist()
    return [text]


def _raw_values(opt: AxisOption, vals: str, vals_dropdown, csv_mode: bool, raw_mode: bool) -> list:
    """Where an axis's values come from: the dropdown (options with choices, unless text inputs are used), the
    option's prepare(), one value per line (raw mode, more than one line), or CSV."""
    if opt.choices is not None and not csv_mode:
        return vals_dropdown
    if opt.prepare is not None:
        return opt.prepare(vals)
    if raw_mode and "\n" in vals.strip():
        return vals.strip().split("\n")
    return csv_string_to_list_strip(vals)


def process_axis(p, opt: AxisOption, vals: str, vals_dropdown, csv_mode: bool = True, raw_mode: bool = False):
    """Models the process_axis step of xyz_grid Script.run: the axis's values (ranges expanded for int and float
    axes, permutations for str_permutations), each converted with opt.type, then opt.confirm(p, values).  The
    "Nothing" axis is the single value 0."""
    if opt.label == "Nothing":
        return [0]
    values = _raw_values(opt, vals, vals_dropdown, csv_mode, raw_mode)
    expander = {int: _expand_int, float: _expand_float}.get(opt.type)
    if expander is not None:
        values = [v for text in values for v in expander(text)]
    elif opt.type is str_permutations:
        values = list(itertools.permutations(values))
    values = [opt.type(v) for v in values]
    if opt.confirm:
        opt.confirm(p, values)
    return values


def _with_random_seeds(opt: AxisOption, values: list) -> list:
    """On the Seed and Var. seed axes, an unset seed (None, '' or -1) becomes a random one, as in the WebUI."""
    if opt.label not in ("Seed", "Var. seed"):
        return values
    return [int(random.randrange(4294967294)) if v in (None, "", -1) else v for v in values]


def _loop_order(cost: dict[str, float]) -> tuple[str, str, str]:
    """The nesting of the plot's loops, outermost first: an axis costlier than both others goes outermost, followed
    by the costlier of the remaining two (the later-named one on a tie); otherwise Z, Y, X."""
    for axis in "xyz":
        a, b = (other for other in "xyz" if other != axis)
        if cost[axis] > cost[a] and cost[axis] > cost[b]:
            second = a if cost[a] > cost[b] else b
            return axis, second, ({"x", "y", "z"} - {axis, second}).pop()
    return "z", "y", "x"


@dataclass
class XYZCell:
    """Stand-in result of one plot cell."""

    x: Any
    y: Any
    z: Any
    ix: int
    iy: int
    iz: int
    p: Any
    processed: Processed


@dataclass
class XYZRun:
    """Stand-in result of a plot: the cells in execution order and the combined Processed."""

    cells: list[XYZCell] = field(default_factory=list)
    processed: Processed | None = None
    xs: list = field(default_factory=list)
    ys: list = field(default_factory=list)
    zs: list = field(default_factory=list)
    grid_infotext: list = field(default_factory=list)


def _grid_infotext(pc, entries: dict) -> str:
    """An infotext of the cell's p with extra entries (on a copy of its extra_generation_params)."""
    pc.extra_generation_params = {**pc.extra_generation_params, **entries}
    return processing.create_infotext(pc, pc.all_prompts, pc.all_seeds, pc.all_subseeds)


def run_plot(
    p,
    x_opt: AxisOption,
    x_values: str,
    y_opt: AxisOption,
    y_values: str,
    z_opt: AxisOption,
    z_values: str,
    *,
    x_values_dropdown=None,
    y_values_dropdown=None,
    z_values_dropdown=None,
    no_fixed_seeds: bool = False,
    csv_mode: bool = True,
    raw_mode: bool = False,
    title: str = "X/Y/Z plot",
) -> XYZRun:
    """Models the body of xyz_grid Script.run (without drawing the grid images): seeds fixed first (unless "Keep -1
    for seeds"), batch size 1 unless grids are returned, the axes' values, one process_images per cell on a shallow
    copy of p with every axis applied (x, then y, then z), an error in a cell reported and the cell left empty.
    The first cell of each Z slice gives that sub-grid's infotext (Script and the X/Y types and values), the very
    first cell the main grid's (adding the Z type and values)."""
    run = XYZRun()
    if not no_fixed_seeds:
        processing.fix_seed(p)
    if not opts.return_grid:
        p.batch_size = 1

    axes = {"x": [x_opt, x_values, x_values_dropdown], "y": [y_opt, y_values, y_values_dropdown]}
    axes["z"] = [z_opt, z_values, z_values_dropdown]
    values: dict[str, list] = {}
    for name, (opt, text, dropdown) in axes.items():
        if opt.choices is not None and not csv_mode:
            axes[name][1] = text = list_to_csv_string(dropdown)
        values[name] = process_axis(p, opt, text, dropdown, csv_mode, raw_mode)
    if not no_fixed_seeds:
        values = {name: _with_random_seeds(axes[name][0], vals) for name, vals in values.items()}
    xs, ys, zs = values["x"], values["y"], values["z"]
    run.xs, run.ys, run.zs = xs, ys, zs
    state.xyz_plot_x, state.xyz_plot_y, state.xyz_plot_z = (AxisInfo(axes[n][0], values[n]) for n in "xyz")

    texts = {name: axes[name][1] for name in "xyz"}
    grid_infotext: list = [None] * (1 + len(zs))

    def run_cell(ix: int, iy: int, iz: int):
        x, y, z = xs[ix], ys[iy], zs[iz]
        if shared.state.interrupted:
            return Processed(p, [], p.seed, "")
        pc = copy(p)
        pc.styles = list(pc.styles)
        for opt, value, all_values in ((x_opt, x, xs), (y_opt, y, ys), (z_opt, z, zs)):
            opt.apply(pc, value, all_values)
        try:
            res = process_images(pc)
        except Exception as e:
            errors.display(e, "generating image for xyz plot")
            res = Processed(p, [], p.seed, "")

        if ix == 0 and iy == 0:
            if grid_infotext[1 + iz] is None:
                entries = {"Script": title}
                for name, opt in (("X", x_opt), ("Y", y_opt)):
                    if opt.label != "Nothing":
                        entries.update({f"{name} Type": opt.label, f"{name} Values": texts[name.lower()]})
                grid_infotext[1 + iz] = _grid_infotext(pc, entries)
            if iz == 0 and grid_infotext[0] is None:
                entries = {"Z Type": z_opt.label, "Z Values": texts["z"]} if z_opt.label != "Nothing" else {}
                grid_infotext[0] = _grid_infotext(pc, entries)

        run.cells.append(XYZCell(x, y, z, ix, iy, iz, pc, res))
        return res

    order = _loop_order({"x": x_opt.cost, "y": y_opt.cost, "z": z_opt.cost})
    sizes = {"x": len(xs), "y": len(ys), "z": len(zs)}
    state.job_count = len(xs) * len(ys) * len(zs) * p.n_iter
    images: list = []
    with SharedSettingsStackHelper():
        for indices in itertools.product(*(range(sizes[name]) for name in order)):
            at = dict(zip(order, indices, strict=True))
            res = run_cell(at["x"], at["y"], at["z"])
            images.append(res.images[0] if res.images else None)

    first = next((c.processed for c in run.cells if c.processed.images), None)
    run.processed = Processed(p, []) if first is None else copy(first)
    run.processed.images = images
    run.grid_infotext = grid_infotext
    return run


# ---------------------------------------------------------------------------------------------------------------
# the script and its UI

_ARG_NAMES = (
    "x_type",
    "x_values",
    "x_values_dropdown",
    "y_type",
    "y_values",
    "y_values_dropdown",
    "z_type",
    "z_values",
    "z_values_dropdown",
    "draw_legend",
    "include_lone_images",
    "include_sub_grids",
    "no_fixed_seeds",
    "margin_size",
    "csv_mode",
    "raw_mode",
)
"""The order of the script's UI components, which is the order of its args."""

# (name, label, value) of the checkboxes under the axes, in the order they are shown
_CHECKBOXES = (
    ("draw_legend", "Draw legend", True),
    ("no_fixed_seeds", "Keep -1 for seeds", False),
    ("include_lone_images", "Include Sub Images", False),
    ("include_sub_grids", "Include Sub Grids", False),
    ("raw_mode", "Use raw text lines", False),
)


class Script(scripts.Script):
    """Models xyz_grid.Script (the 'X/Y/Z plot' selectable script): three axis rows (type dropdown, values text,
    values dropdown), the plot's checkboxes and margin slider; X/Y/Z types and values are pasted from infotexts."""

    def title(self) -> str:
        return "X/Y/Z plot"

    def _axis_row(self, axis: str, labels: list[str], default: str) -> dict:
        upper = axis.upper()
        with gr.Row():
            made = {
                f"{axis}_type": gr.Dropdown(
                    label=f"{upper} type",
                    choices=labels,
                    value=default,
                    type="index",
                    elem_id=self.elem_id(f"{axis}_type"),
                ),
                f"{axis}_values": gr.Textbox(label=f"{upper} values", lines=1, elem_id=self.elem_id(f"{axis}_values")),
                f"{axis}_values_dropdown": gr.Dropdown(
                    label=f"{upper} values", visible=False, multiselect=True, interactive=True
                ),
            }
            if axis == "x":
                ToolButton(value=fill_values_symbol, elem_id="xyz_grid_fill_x_tool_button", visible=False)
        return made

    def ui(self, is_img2img):
        self.current_axis_options = _options_for_tab(is_img2img)
        labels = [o.label for o in self.current_axis_options]
        made: dict[str, Any] = {}
        with gr.Row():
            with gr.Column(scale=19):
                for axis, default in (("x", labels[1]), ("y", labels[0]), ("z", labels[0])):
                    made.update(self._axis_row(axis, labels, default))
        with gr.Row(variant="compact", elem_id="axis_options"):
            for name, label, value in _CHECKBOXES:
                made[name] = gr.Checkbox(label=label, value=value, elem_id=self.elem_id(name))
            made["margin_size"] = gr.Slider(
                label="Grid margins (px)", minimum=0, maximum=500, value=0, step=2, elem_id=self.elem_id("margin_size")
            )
            made["csv_mode"] = gr.Checkbox(
                label="Use text inputs instead of dropdowns", value=False, elem_id=self.elem_id("csv_mode")
            )
        self.infotext_fields = tuple(
            (made[f"{axis}_{part}"], f"{axis.upper()} {part.capitalize()}")
            for axis in "xyz"
            for part in ("type", "values")
        )
        return [made[name] for name in _ARG_NAMES]

    def run(self, p, *args):
        a = dict(zip(_ARG_NAMES, args, strict=True))
        options = self.current_axis_options
        result = run_plot(
            p,
            options[a["x_type"]],
            a["x_values"],
            options[a["y_type"]],
            a["y_values"],
            options[a["z_type"]],
            a["z_values"],
            x_values_dropdown=a["x_values_dropdown"],
            y_values_dropdown=a["y_values_dropdown"],
            z_values_dropdown=a["z_values_dropdown"],
            no_fixed_seeds=a["no_fixed_seeds"],
            csv_mode=a["csv_mode"],
            raw_mode=a["raw_mode"],
            title=self.title(),
        )
        self.last_run = result
        return result.processed


def find_axis_option(label: str, is_img2img: bool) -> AxisOption:
    """Stand-in helper: the axis option with this label valid for the tab (as the UI's dropdown lists them)."""
    current = _options_for_tab(is_img2img)
    found = next((o for o in current if o.label == label), None)
    if found is None:
        raise KeyError(f"no X/Y/Z axis option {label!r}; have {[o.label for o in current]}")
    return found


def run_axes(
    make_p: Callable[[], Any],
    x_label: str,
    x_values_text: str,
    y_label: str | None = None,
    y_values_text: str | None = None,
    z_label: str | None = None,
    z_values_text: str | None = None,
    *,
    no_fixed_seeds: bool = False,
) -> XYZRun:
    """Stand-in entry: run an X/Y/Z plot on the processing object make_p() returns (values given as text, like the
    'Use text inputs instead of dropdowns' mode). Returns XYZRun(cells=[XYZCell(x, y, z, ix, iy, iz, p,
    processed)], processed=...)."""
    p = make_p()
    is_img2img = not isinstance(p, StableDiffusionProcessingTxt2Img)
    chosen = [
        (find_axis_option(label or "Nothing", is_img2img), text or "")
        for label, text in ((x_label, x_values_text), (y_label, y_values_text), (z_label, z_values_text))
    ]
    (x_opt, x_text), (y_opt, y_text), (z_opt, z_text) = chosen
    return run_plot(p, x_opt, x_text, y_opt, y_text, z_opt, z_text, no_fixed_seeds=no_fixed_seeds, csv_mode=True)
