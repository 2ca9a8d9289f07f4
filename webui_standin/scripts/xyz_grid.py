"""Stand-in for the WebUI's built-in scripts/xyz_grid.py ("X/Y/Z plot").

(No ``from __future__ import annotations`` here: script files are loaded without a sys.modules entry, and
dataclasses with string annotations then fail - in the WebUI too.)

Extensions find this module through ``modules.scripts.scripts_data`` (the entry whose path ends in xyz_grid.py) and
append ``AxisOption``s to ``axis_options``. ``run_axes`` (stand-in entry) runs a plot the way ``Script.run`` does:
value parsing by axis type, ``confirm``, a shallow ``copy(p)`` per cell, ``apply`` for each axis, process_images;
it returns every cell's p and Processed (no grid image is drawn).
"""

import csv
import random
import re
from collections import namedtuple
from collections.abc import Callable
from copy import copy
from dataclasses import dataclass, field
from io import StringIO
from itertools import chain, permutations
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


def apply_field(field: str) -> Callable:  # mirrors xyz_grid.apply_field
    def fun(p, x, xs):
        setattr(p, field, x)

    return fun


def apply_prompt(p, x, xs):  # mirrors xyz_grid.apply_prompt (Prompt S/R)
    if xs[0] not in p.prompt and xs[0] not in p.negative_prompt:
        raise RuntimeError(f"Prompt S/R did not find {xs[0]} in prompt or negative prompt.")
    p.prompt = p.prompt.replace(xs[0], x)
    p.negative_prompt = p.negative_prompt.replace(xs[0], x)


def apply_order(p, x, xs):  # mirrors xyz_grid.apply_order
    token_order = []
    for token in x:
        token_order.append((p.prompt.find(token), token))
    token_order.sort(key=lambda t: t[0])
    prompt_parts = []
    for _, token in token_order:
        n = p.prompt.find(token)
        prompt_parts.append(p.prompt[0:n])
        p.prompt = p.prompt[n + len(token) :]
    prompt_tmp = ""
    for idx, part in enumerate(prompt_parts):
        prompt_tmp += part
        prompt_tmp += x[idx]
    p.prompt = prompt_tmp + p.prompt


def confirm_samplers(p, xs):  # mirrors xyz_grid.confirm_samplers
    for x in xs:
        if x.lower() not in sd_samplers.samplers_map:
            raise RuntimeError(f"Unknown sampler: {x}")


def apply_override(field: str, boolean: bool = False) -> Callable:  # mirrors xyz_grid.apply_override
    def fun(p, x, xs):
        if boolean:
            x = True if x.lower() == "true" else False
        p.override_settings[field] = x

    return fun


def boolean_choice(reverse: bool = False) -> Callable:  # mirrors xyz_grid.boolean_choice
    def choice():
        return ["False", "True"] if reverse else ["True", "False"]

    return choice


def format_value_add_label(p, opt, x):  # mirrors xyz_grid.format_value_add_label
    if type(x) is float:
        x = round(x, 8)
    return f"{opt.label}: {x}"


def format_value(p, opt, x):  # mirrors xyz_grid.format_value
    if type(x) is float:
        x = round(x, 8)
    return x


def format_value_join_list(p, opt, x):  # mirrors xyz_grid.format_value_join_list
    return ", ".join(x)


def do_nothing(p, x, xs):  # mirrors xyz_grid.do_nothing
    pass


def format_nothing(p, opt, x):  # mirrors xyz_grid.format_nothing
    return ""


def str_permutations(x):
    """mirrors xyz_grid.str_permutations: dummy type meaning 'all permutations of the values'."""
    return x


def list_to_csv_string(data_list) -> str:  # mirrors xyz_grid.list_to_csv_string
    with StringIO() as o:
        csv.writer(o).writerow(data_list)
        return o.getvalue().strip()


def csv_string_to_list_strip(data_str: str) -> list[str]:  # mirrors xyz_grid.csv_string_to_list_strip
    return list(map(str.strip, chain.from_iterable(csv.reader(StringIO(data_str)))))


class AxisOption:
    """mirrors xyz_grid.AxisOption"""

    def __init__(
        self,
        label,
        type,
        apply,
        format_value=format_value_add_label,
        confirm=None,
        cost=0.0,
        choices=None,
        prepare=None,
    ) -> None:
        self.label = label
        self.type = type
        self.apply = apply
        self.format_value = format_value
        self.confirm = confirm
        self.cost = cost
        self.prepare = prepare
        self.choices = choices


class AxisOptionImg2Img(AxisOption):
    """mirrors xyz_grid.AxisOptionImg2Img"""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.is_img2img = True


class AxisOptionTxt2Img(AxisOption):
    """mirrors xyz_grid.AxisOptionTxt2Img"""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.is_img2img = False


axis_options = [  # mirrors xyz_grid.axis_options (the options that make sense in the stand-in)
    AxisOption("Nothing", str, do_nothing, format_value=format_nothing),
    AxisOption("Seed", int, apply_field("seed")),
    AxisOption("Var. seed", int, apply_field("subseed")),
    AxisOption("Var. strength", float, apply_field("subseed_strength")),
    AxisOption("Steps", int, apply_field("steps")),
    AxisOptionTxt2Img("Hires steps", int, apply_field("hr_second_pass_steps")),
    AxisOption("CFG Scale", float, apply_field("cfg_scale")),
    AxisOptionImg2Img("Image CFG Scale", float, apply_field("image_cfg_scale")),
    AxisOption("Prompt S/R", str, apply_prompt, format_value=format_value),
    AxisOption("Prompt order", str_permutations, apply_order, format_value=format_value_join_list),
    AxisOptionTxt2Img(
        "Sampler",
        str,
        apply_field("sampler_name"),
        format_value=format_value,
        confirm=confirm_samplers,
        choices=lambda: [x.name for x in sd_samplers.samplers],
    ),
    AxisOptionTxt2Img(
        "Hires sampler",
        str,
        apply_field("hr_sampler_name"),
        confirm=confirm_samplers,
        choices=lambda: [x.name for x in sd_samplers.samplers_for_img2img],
    ),
    AxisOptionImg2Img(
        "Sampler",
        str,
        apply_field("sampler_name"),
        format_value=format_value,
        confirm=confirm_samplers,
        choices=lambda: [x.name for x in sd_samplers.samplers_for_img2img],
    ),
    AxisOption("Negative Guidance minimum sigma", float, apply_field("s_min_uncond")),
    AxisOption("Sigma Churn", float, apply_field("s_churn")),
    AxisOption("Sigma min", float, apply_field("s_tmin")),
    AxisOption("Sigma max", float, apply_field("s_tmax")),
    AxisOption("Sigma noise", float, apply_field("s_noise")),
    AxisOption(
        "Schedule type", str, apply_field("scheduler"), choices=lambda: [x.label for x in sd_schedulers.schedulers]
    ),
    AxisOption("Schedule min sigma", float, apply_override("sigma_min")),
    AxisOption("Schedule max sigma", float, apply_override("sigma_max")),
    AxisOption("Schedule rho", float, apply_override("rho")),
    AxisOption("Eta", float, apply_field("eta")),
    AxisOption("Denoising", float, apply_field("denoising_strength")),
    AxisOption("Initial noise multiplier", float, apply_field("initial_noise_multiplier")),
    AxisOption("Extra noise", float, apply_override("img2img_extra_noise")),
    AxisOption(
        "Always discard next-to-last sigma",
        str,
        apply_override("always_discard_next_to_last_sigma", boolean=True),
        choices=boolean_choice(reverse=True),
    ),
    AxisOption(
        "SGM noise multiplier",
        str,
        apply_override("sgm_noise_multiplier", boolean=True),
        choices=boolean_choice(reverse=True),
    ),
]


class SharedSettingsStackHelper:
    """mirrors xyz_grid.SharedSettingsStackHelper: restores a few settings after the plot."""

    def __enter__(self):
        self.CLIP_stop_at_last_layers = opts.CLIP_stop_at_last_layers
        self.vae = opts.sd_vae
        self.uni_pc_order = opts.uni_pc_order

    def __exit__(self, exc_type, exc_value, tb):
        opts.data["sd_vae"] = self.vae
        opts.data["uni_pc_order"] = self.uni_pc_order
        opts.data["CLIP_stop_at_last_layers"] = self.CLIP_stop_at_last_layers


re_range = re.compile(r"\s*([+-]?\s*\d+)\s*-\s*([+-]?\s*\d+)(?:\s*\(([+-]\d+)\s*\))?\s*")
re_range_float = re.compile(
    r"\s*([+-]?\s*\d+(?:.\d*)?)\s*-\s*([+-]?\s*\d+(?:.\d*)?)"
    r"(?:\s*\(([+-]\d+(?:.\d*)?)\s*\))?\s*"
)
re_range_count = re.compile(r"\s*([+-]?\s*\d+)\s*-\s*([+-]?\s*\d+)(?:\s*\[(\d+)\s*])?\s*")
re_range_count_float = re.compile(
    r"\s*([+-]?\s*\d+(?:.\d*)?)\s*-\s*([+-]?\s*\d+(?:.\d*)?)"
    r"(?:\s*\[(\d+(?:.\d*)?)\s*])?\s*"
)


def process_axis(p, opt: AxisOption, vals: str, vals_dropdown, csv_mode: bool = True, raw_mode: bool = False):
    """mirrors the inner process_axis of xyz_grid Script.run: splits, expands ranges for int/float axes
    ('1-5', '1-10 (+2)', '1-10 [5]'), converts with opt.type and runs opt.confirm(p, values)."""
    if opt.label == "Nothing":
        return [0]

    if opt.choices is not None and not csv_mode:
        valslist = vals_dropdown
    elif opt.prepare is not None:
        valslist = opt.prepare(vals)
    elif raw_mode and vals.strip().find("\n") != -1:
        valslist = vals.strip().split("\n")
    else:
        valslist = csv_string_to_list_strip(vals)

    if opt.type is int:
        valslist_ext: list[Any] = []
        for val in valslist:
            m = re_range.fullmatch(val)
            mc = re_range_count.fullmatch(val)
            if m is not None:
                start = int(m.group(1))
                end = int(m.group(2)) + 1
                step = int(m.group(3)) if m.group(3) is not None else 1
                valslist_ext += list(range(start, end, step))
            elif mc is not None:
                start = int(mc.group(1))
                end = int(mc.group(2))
                num = int(mc.group(3)) if mc.group(3) is not None else 1
                valslist_ext += [int(x) for x in np.linspace(start=start, stop=end, num=num).tolist()]
            else:
                valslist_ext.append(val)
        valslist = valslist_ext
    elif opt.type is float:
        valslist_ext = []
        for val in valslist:
            m = re_range_float.fullmatch(val)
            mc = re_range_count_float.fullmatch(val)
            if m is not None:
                start = float(m.group(1))
                end = float(m.group(2))
                step = float(m.group(3)) if m.group(3) is not None else 1
                valslist_ext += np.arange(start, end + step, step).tolist()
            elif mc is not None:
                start = float(mc.group(1))
                end = float(mc.group(2))
                num = int(mc.group(3)) if mc.group(3) is not None else 1
                valslist_ext += np.linspace(start=start, stop=end, num=num).tolist()
            else:
                valslist_ext.append(val)
        valslist = valslist_ext
    elif opt.type is str_permutations:
        valslist = list(permutations(valslist))

    valslist = [opt.type(x) for x in valslist]

    if opt.confirm:
        opt.confirm(p, valslist)

    return valslist


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
    """mirrors the body of xyz_grid Script.run (without drawing the grid images)."""
    run = XYZRun()
    if not no_fixed_seeds:
        processing.fix_seed(p)

    if not opts.return_grid:
        p.batch_size = 1

    if x_opt.choices is not None and not csv_mode:
        x_values = list_to_csv_string(x_values_dropdown)
    xs = process_axis(p, x_opt, x_values, x_values_dropdown, csv_mode, raw_mode)
    if y_opt.choices is not None and not csv_mode:
        y_values = list_to_csv_string(y_values_dropdown)
    ys = process_axis(p, y_opt, y_values, y_values_dropdown, csv_mode, raw_mode)
    if z_opt.choices is not None and not csv_mode:
        z_values = list_to_csv_string(z_values_dropdown)
    zs = process_axis(p, z_opt, z_values, z_values_dropdown, csv_mode, raw_mode)

    def fix_axis_seeds(axis_opt, axis_list):
        if axis_opt.label in ["Seed", "Var. seed"]:
            return [
                int(random.randrange(4294967294)) if val is None or val == "" or val == -1 else val for val in axis_list
            ]
        return axis_list

    if not no_fixed_seeds:
        xs = fix_axis_seeds(x_opt, xs)
        ys = fix_axis_seeds(y_opt, ys)
        zs = fix_axis_seeds(z_opt, zs)
    run.xs, run.ys, run.zs = xs, ys, zs

    state.xyz_plot_x = AxisInfo(x_opt, xs)
    state.xyz_plot_y = AxisInfo(y_opt, ys)
    state.xyz_plot_z = AxisInfo(z_opt, zs)

    first_axes_processed = "z"
    second_axes_processed = "y"
    if x_opt.cost > y_opt.cost and x_opt.cost > z_opt.cost:
        first_axes_processed = "x"
        second_axes_processed = "y" if y_opt.cost > z_opt.cost else "z"
    elif y_opt.cost > x_opt.cost and y_opt.cost > z_opt.cost:
        first_axes_processed = "y"
        second_axes_processed = "x" if x_opt.cost > z_opt.cost else "z"
    elif z_opt.cost > x_opt.cost and z_opt.cost > y_opt.cost:
        first_axes_processed = "z"
        second_axes_processed = "x" if x_opt.cost > y_opt.cost else "y"

    grid_infotext: list = [None] * (1 + len(zs))

    def cell(x, y, z, ix, iy, iz):
        if shared.state.interrupted:
            return Processed(p, [], p.seed, "")

        pc = copy(p)
        pc.styles = pc.styles[:]
        x_opt.apply(pc, x, xs)
        y_opt.apply(pc, y, ys)
        z_opt.apply(pc, z, zs)

        try:
            res = process_images(pc)
        except Exception as e:
            errors.display(e, "generating image for xyz plot")
            res = Processed(p, [], p.seed, "")

        subgrid_index = 1 + iz
        if grid_infotext[subgrid_index] is None and ix == 0 and iy == 0:
            pc.extra_generation_params = copy(pc.extra_generation_params)
            pc.extra_generation_params["Script"] = title
            if x_opt.label != "Nothing":
                pc.extra_generation_params["X Type"] = x_opt.label
                pc.extra_generation_params["X Values"] = x_values
            if y_opt.label != "Nothing":
                pc.extra_generation_params["Y Type"] = y_opt.label
                pc.extra_generation_params["Y Values"] = y_values
            grid_infotext[subgrid_index] = processing.create_infotext(pc, pc.all_prompts, pc.all_seeds, pc.all_subseeds)
        if grid_infotext[0] is None and ix == 0 and iy == 0 and iz == 0:
            pc.extra_generation_params = copy(pc.extra_generation_params)
            if z_opt.label != "Nothing":
                pc.extra_generation_params["Z Type"] = z_opt.label
                pc.extra_generation_params["Z Values"] = z_values
            grid_infotext[0] = processing.create_infotext(pc, pc.all_prompts, pc.all_seeds, pc.all_subseeds)

        run.cells.append(XYZCell(x, y, z, ix, iy, iz, pc, res))
        return res

    def order():
        loops = {"x": list(enumerate(xs)), "y": list(enumerate(ys)), "z": list(enumerate(zs))}
        third = ({"x", "y", "z"} - {first_axes_processed, second_axes_processed}).pop()
        for a in loops[first_axes_processed]:
            for b in loops[second_axes_processed]:
                for c in loops[third]:
                    d = {first_axes_processed: a, second_axes_processed: b, third: c}
                    yield d["x"], d["y"], d["z"]

    state.job_count = len(xs) * len(ys) * len(zs) * p.n_iter
    images: list = []
    with SharedSettingsStackHelper():
        for (ix, x), (iy, y), (iz, z) in order():
            res = cell(x, y, z, ix, iy, iz)
            images.append(res.images[0] if res.images else None)

    first = next((c.processed for c in run.cells if c.processed.images), None)
    run.processed = copy(first) if first is not None else Processed(p, [])
    run.processed.images = images
    run.grid_infotext = grid_infotext
    return run


class Script(scripts.Script):
    """mirrors xyz_grid.Script (the 'X/Y/Z plot' selectable script)."""

    def title(self) -> str:
        return "X/Y/Z plot"

    def ui(self, is_img2img):
        self.current_axis_options = [x for x in axis_options if type(x) is AxisOption or x.is_img2img == is_img2img]
        labels = [x.label for x in self.current_axis_options]
        with gr.Row():
            with gr.Column(scale=19):
                with gr.Row():
                    x_type = gr.Dropdown(
                        label="X type", choices=labels, value=labels[1], type="index", elem_id=self.elem_id("x_type")
                    )
                    x_values = gr.Textbox(label="X values", lines=1, elem_id=self.elem_id("x_values"))
                    x_values_dropdown = gr.Dropdown(label="X values", visible=False, multiselect=True, interactive=True)
                    ToolButton(value=fill_values_symbol, elem_id="xyz_grid_fill_x_tool_button", visible=False)
                with gr.Row():
                    y_type = gr.Dropdown(
                        label="Y type", choices=labels, value=labels[0], type="index", elem_id=self.elem_id("y_type")
                    )
                    y_values = gr.Textbox(label="Y values", lines=1, elem_id=self.elem_id("y_values"))
                    y_values_dropdown = gr.Dropdown(label="Y values", visible=False, multiselect=True, interactive=True)
                with gr.Row():
                    z_type = gr.Dropdown(
                        label="Z type", choices=labels, value=labels[0], type="index", elem_id=self.elem_id("z_type")
                    )
                    z_values = gr.Textbox(label="Z values", lines=1, elem_id=self.elem_id("z_values"))
                    z_values_dropdown = gr.Dropdown(label="Z values", visible=False, multiselect=True, interactive=True)
        with gr.Row(variant="compact", elem_id="axis_options"):
            draw_legend = gr.Checkbox(label="Draw legend", value=True, elem_id=self.elem_id("draw_legend"))
            no_fixed_seeds = gr.Checkbox(label="Keep -1 for seeds", value=False, elem_id=self.elem_id("no_fixed_seeds"))
            include_lone_images = gr.Checkbox(
                label="Include Sub Images", value=False, elem_id=self.elem_id("include_lone_images")
            )
            include_sub_grids = gr.Checkbox(
                label="Include Sub Grids", value=False, elem_id=self.elem_id("include_sub_grids")
            )
            raw_mode = gr.Checkbox(label="Use raw text lines", value=False, elem_id=self.elem_id("raw_mode"))
            margin_size = gr.Slider(
                label="Grid margins (px)", minimum=0, maximum=500, value=0, step=2, elem_id=self.elem_id("margin_size")
            )
            csv_mode = gr.Checkbox(
                label="Use text inputs instead of dropdowns", value=False, elem_id=self.elem_id("csv_mode")
            )

        self.infotext_fields = (
            (x_type, "X Type"),
            (x_values, "X Values"),
            (y_type, "Y Type"),
            (y_values, "Y Values"),
            (z_type, "Z Type"),
            (z_values, "Z Values"),
        )
        return [
            x_type,
            x_values,
            x_values_dropdown,
            y_type,
            y_values,
            y_values_dropdown,
            z_type,
            z_values,
            z_values_dropdown,
            draw_legend,
            include_lone_images,
            include_sub_grids,
            no_fixed_seeds,
            margin_size,
            csv_mode,
            raw_mode,
        ]

    def run(
        self,
        p,
        x_type,
        x_values,
        x_values_dropdown,
        y_type,
        y_values,
        y_values_dropdown,
        z_type,
        z_values,
        z_values_dropdown,
        draw_legend,
        include_lone_images,
        include_sub_grids,
        no_fixed_seeds,
        margin_size,
        csv_mode,
        raw_mode,
    ):
        opts_list = self.current_axis_options
        result = run_plot(
            p,
            opts_list[x_type],
            x_values,
            opts_list[y_type],
            y_values,
            opts_list[z_type],
            z_values,
            x_values_dropdown=x_values_dropdown,
            y_values_dropdown=y_values_dropdown,
            z_values_dropdown=z_values_dropdown,
            no_fixed_seeds=no_fixed_seeds,
            csv_mode=csv_mode,
            raw_mode=raw_mode,
            title=self.title(),
        )
        self.last_run = result
        return result.processed


def find_axis_option(label: str, is_img2img: bool) -> AxisOption:
    """Stand-in helper: the axis option with this label valid for the tab (as the UI's dropdown lists them)."""
    current = [x for x in axis_options if type(x) is AxisOption or x.is_img2img == is_img2img]
    for opt in current:
        if opt.label == label:
            return opt
    raise KeyError(f"no X/Y/Z axis option {label!r}; have {[o.label for o in current]}")


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
    x_opt = find_axis_option(x_label, is_img2img)
    y_opt = find_axis_option(y_label or "Nothing", is_img2img)
    z_opt = find_axis_option(z_label or "Nothing", is_img2img)
    return run_plot(
        p,
        x_opt,
        x_values_text,
        y_opt,
        y_values_text or "",
        z_opt,
        z_values_text or "",
        no_fixed_seeds=no_fixed_seeds,
        csv_mode=True,
    )
