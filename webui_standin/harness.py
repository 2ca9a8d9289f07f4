"""Façade over the WebUI stand-in: start it with an extension and a model, then generate like the UI or the API.

Typical use::

    from webui_standin import harness
    h = harness.start("/path/to/extension", FakeSD1Model())
    res = harness.txt2img(prompt="a cat", negative_prompt="blurry", steps=5, sampler_name="Euler",
                          script_args={"Negative Prompt Delay": [True, 2]})

`start` mirrors the WebUI start-up order: load scripts (built-in X/Y/Z plot, then the extension's scripts/*.py,
then the built-in Refiner), model_loaded callbacks, before_ui callbacks, ui_settings callbacks, then the txt2img
and img2img UIs (real gradio Blocks; scripts' ui() runs once per tab).
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

_ROOT = os.path.dirname(os.path.abspath(__file__))
if _ROOT not in sys.path:
    sys.path.insert(0, _ROOT)

import fork_flavour  # noqa: E402
import gradio as gr  # noqa: E402
from fork_flavour import patcher as fork_patcher  # noqa: E402
from modules import (  # noqa: E402
    errors,
    extensions,
    infotext_utils,
    processing,
    script_callbacks,
    scripts,
    sd_models,
    sd_samplers,
    shared,
)
from modules.infotext_utils import PasteField  # noqa: E402
from modules.ui_components import InputAccordion  # noqa: E402

XYZ_PATH = os.path.join(_ROOT, "scripts", "xyz_grid.py")
REFINER_PATH = os.path.join(_ROOT, "modules", "processing_scripts", "refiner.py")

UI_CATEGORIES = (
    "prompt image inpaint sampler accordions checkboxes dimensions cfg denoising seed batch override_settings".split()
)
"""mirrors shared_items.ui_reorder_categories (built-in part): scripts with one of these `section`s get their UI
built there; other string sections follow; section None goes with the 'scripts' category (ScriptRunner.setup_ui)."""


@dataclass
class TabUI:
    """The components of one tab's UI (built inside `blocks`)."""

    name: str
    runner: scripts.ScriptRunner
    blocks: Any = None
    fields: dict[str, Any] = field(default_factory=dict)
    """basic components by request field name (prompt, negative_prompt, steps, sampler_name, ...)"""
    paste_fields: list = field(default_factory=list)
    send_buttons: dict[str, Any] = field(default_factory=dict)
    """the ParamBinding of each "Send to <destination>" button under the tab's gallery"""


@dataclass
class StandIn:
    """State of a started stand-in."""

    extension_root: str | None
    model: Any
    txt2img: TabUI | None = None
    img2img: TabUI | None = None
    xyz_module: Any = None
    api: Any = None
    last_p: Any = None
    last_processed: Any = None


_current: StandIn | None = None


def current() -> StandIn:
    if _current is None:
        raise RuntimeError("harness.start() has not been called")
    return _current


def _load_builtin(path: str) -> Any:
    """Loads a built-in script file like scripts.load_scripts does for the WebUI's own scripts/ directory."""
    before = len(scripts.scripts_data)
    scripts.load_script_files([scripts.ScriptFile(shared_root(), os.path.basename(path), path)])
    if len(scripts.scripts_data) > before:
        return scripts.scripts_data[-1].module
    return None


def shared_root() -> str:
    from modules import paths

    return paths.script_path


def _ordered_sections(tab_runner: scripts.ScriptRunner) -> list:
    sections: dict[str, int] = {}
    for s in tab_runner.scripts:
        if isinstance(s.section, str) and s.section not in UI_CATEGORIES:
            sections[s.section] = 1
    return [*UI_CATEGORIES, *sections, "scripts"]


def _build_tab(name: str, runner: scripts.ScriptRunner) -> TabUI:
    """mirrors the txt2img/img2img part of modules/ui.py create_ui."""
    is_img2img = name == "img2img"
    scripts.scripts_current = runner
    runner.initialize_scripts(is_img2img=is_img2img)
    tab = TabUI(name=name, runner=runner)
    with gr.Blocks(analytics_enabled=False) as blocks:
        f = tab.fields
        runner.prepare_ui()
        for category in _ordered_sections(runner):
            if category == "prompt":
                f["prompt"] = gr.Textbox(label="Prompt", elem_id=f"{name}_prompt", lines=3)
                f["negative_prompt"] = gr.Textbox(label="Negative prompt", elem_id=f"{name}_neg_prompt", lines=3)
            elif category == "sampler":
                f["sampler_name"] = gr.Dropdown(
                    label="Sampling method",
                    choices=sd_samplers.visible_sampler_names(),
                    value="DPM++ 2M",
                    elem_id=f"{name}_sampling",
                )
                from modules import sd_schedulers

                f["scheduler"] = gr.Dropdown(
                    label="Schedule type",
                    value="Automatic",
                    choices=[x.label for x in sd_schedulers.schedulers],
                    elem_id=f"{name}_scheduler",
                )
                f["steps"] = gr.Slider(
                    minimum=1, maximum=150, step=1, label="Sampling steps", value=20, elem_id=f"{name}_steps"
                )
            elif category == "dimensions":
                f["width"] = gr.Slider(minimum=64, maximum=2048, step=8, label="Width", value=512)
                f["height"] = gr.Slider(minimum=64, maximum=2048, step=8, label="Height", value=512)
            elif category == "cfg":
                f["cfg_scale"] = gr.Slider(minimum=1.0, maximum=30.0, step=0.5, label="CFG Scale", value=7.0)
            elif category == "denoising" and is_img2img:
                f["denoising_strength"] = gr.Slider(
                    minimum=0.0, maximum=1.0, step=0.01, label="Denoising strength", value=0.75
                )
            elif category == "seed":
                f["seed"] = gr.Number(label="Seed", value=-1, precision=0)
            elif category == "batch":
                f["batch_size"] = gr.Slider(minimum=1, maximum=8, step=1, label="Batch size", value=1)
            elif category == "accordions":
                with gr.Row(elem_id=f"{name}_accordions", elem_classes="accordions"):
                    if not is_img2img:
                        with InputAccordion(False, label="Hires. fix", elem_id="txt2img_hr") as enable_hr:
                            f["enable_hr"] = enable_hr
                            f["denoising_strength"] = gr.Slider(
                                minimum=0.0, maximum=1.0, step=0.01, label="Denoising strength", value=0.7
                            )
                            f["hr_scale"] = gr.Slider(
                                minimum=1.0, maximum=4.0, step=0.05, label="Upscale by", value=2.0
                            )
                            f["hr_second_pass_steps"] = gr.Slider(
                                minimum=0, maximum=150, step=1, label="Hires steps", value=0
                            )
                    runner.setup_ui_for_section(category)
            elif category == "scripts":
                runner.setup_ui()
            if category not in {"accordions", "scripts"}:
                runner.setup_ui_for_section(category)

        api_names = {
            "prompt": "Prompt",
            "negative_prompt": "Negative prompt",
            "steps": "Steps",
            "cfg_scale": "CFG scale",
            "width": "Size-1",
            "height": "Size-2",
            "seed": "Seed",
            "batch_size": "Batch size",
            "denoising_strength": "Denoising strength",
            "hr_scale": "Hires upscale",
            "hr_second_pass_steps": "Hires steps",
            "scheduler": "Schedule type",
        }
        paste = [PasteField(f[k], label, api=k) for k, label in api_names.items() if k in f]
        paste.append(PasteField(f["sampler_name"], lambda d: d.get("Sampler", None), api="sampler_name"))
        if "enable_hr" in f:
            paste.append(
                PasteField(
                    f["enable_hr"],
                    lambda d: (
                        "Denoising strength" in d
                        and ("Hires upscale" in d or "Hires upscaler" in d or "Hires resize-1" in d)
                    ),
                    api="enable_hr",
                )
            )
        paste += list(runner.infotext_fields)
        infotext_utils.add_paste_fields(name, None, paste, None)
        if is_img2img:
            infotext_utils.add_paste_fields("inpaint", None, paste, None)  # the inpaint tab shares img2img's fields
        tab.paste_fields = infotext_utils.paste_fields[name]["fields"]
        # the "Send to" buttons under the tab's gallery (ui_common.create_output_panel): only txt2img's copy fields
        for destination in ("img2img", "inpaint", "extras"):
            binding = infotext_utils.ParamBinding(
                paste_button=None,
                tabname=destination,
                source_tabname="txt2img" if name == "txt2img" else None,
                paste_field_names=runner.paste_field_names,
            )
            infotext_utils.register_paste_params_button(binding)
            tab.send_buttons[destination] = binding
    tab.blocks = blocks
    return tab


def start(
    extension_root: str | None,
    model: Any,
    *,
    latent_scale_factor: int | None = None,
    build_ui: bool = True,
    more_extensions: Sequence[str] = (),
    host: str = "a1111",
) -> StandIn:
    """Start the stand-in: shared.sd_model = model; clear callbacks, scripts and options to defaults; register the
    X/Y/Z plot; load `extension_root`/scripts/*.py, then each of `more_extensions` (other extension roots, in that
    order); fire model_loaded, before_ui, ui_settings; build both UIs.

    `latent_scale_factor`: pixels per latent cell, set on the model if given (a model without the attribute and
    with latent_channels == 3 - e.g. a pixel-space toy model - gets 1; otherwise the WebUI's 8 is used).

    `host`: "a1111" (default), or a fork flavour - "forge", "neo", "classic", "classic-1.8", "reforge" - selected
    before anything loads (see fork_flavour/__init__.py); a later start with "a1111" removes every trace of it."""
    global _current
    fork_flavour.select(host)
    if latent_scale_factor is not None:
        model.latent_scale_factor = latent_scale_factor
    elif not hasattr(model, "latent_scale_factor") and getattr(model, "latent_channels", 4) == 3:
        model.latent_scale_factor = 1

    shared.sd_model = model
    sd_models.checkpoints_list.clear()
    sd_models.checkpoint_aliases.clear()
    sd_models.selected[0] = None
    if getattr(model, "sd_checkpoint_info", None) is not None:
        sd_models.register_checkpoint(model, select=True)
    if fork_flavour.active() is not None:
        fork_patcher.attach(model)
    errors.recorded.clear()
    scripts.clear()
    infotext_utils.reset()
    extensions.extensions.clear()
    for key in [k for k, info in shared.opts.data_labels.items() if k not in _BUILTIN_OPTION_KEYS]:
        del shared.opts.data_labels[key]
    shared.reset_state()
    processing.StableDiffusionProcessing.cached_c = [None, None]
    processing.StableDiffusionProcessing.cached_uc = [None, None]
    processing.StableDiffusionProcessingTxt2Img.cached_hr_c = [None, None]
    processing.StableDiffusionProcessingTxt2Img.cached_hr_uc = [None, None]

    xyz_module = _load_builtin(XYZ_PATH)
    if extension_root is not None:
        scripts.load_extension_scripts(extension_root)
    for root in more_extensions:
        scripts.load_extension_scripts(root)
    _load_builtin(REFINER_PATH)
    scripts.create_runners()

    st = StandIn(extension_root=extension_root, model=model, xyz_module=xyz_module)
    _current = st

    script_callbacks.model_loaded_callback(model)
    if build_ui:
        script_callbacks.before_ui_callback()
        script_callbacks.ui_settings_callback()
        st.txt2img = _build_tab("txt2img", scripts.scripts_txt2img)
        st.img2img = _build_tab("img2img", scripts.scripts_img2img)
        infotext_utils.add_paste_fields("extras", None, None)  # mirrors ui_postprocessing.create_ui
    return st


def start_api_only(extension_root: str | None, model: Any) -> StandIn:
    """Start like ``webui.py --nowebui`` (v1.10.1 api_only): scripts load, then the API object is created, which
    builds the UI itself (Api.__init__ calls ui.create_ui() while no script is initialised), and only then do
    the before_ui callbacks run."""
    st = start(extension_root, model, build_ui=False)
    script_callbacks.ui_settings_callback()
    st.txt2img = _build_tab("txt2img", scripts.scripts_txt2img)
    st.img2img = _build_tab("img2img", scripts.scripts_img2img)
    api()
    script_callbacks.before_ui_callback()
    return st


def switch_model(model: Any) -> None:
    """Load another model: shared.sd_model = model, then the model_loaded callbacks (sd_models.reload_model_weights)."""
    if not hasattr(model, "latent_scale_factor") and getattr(model, "latent_channels", 4) == 3:
        model.latent_scale_factor = 1
    shared.sd_model = model
    current().model = model
    if getattr(model, "sd_checkpoint_info", None) is not None:
        sd_models.register_checkpoint(model, select=True)
    if fork_flavour.active() is not None:
        fork_patcher.reload(model)
    script_callbacks.model_loaded_callback(model)


def runner(tab: str = "txt2img") -> scripts.ScriptRunner:
    return scripts.scripts_img2img if tab == "img2img" else scripts.scripts_txt2img


def script(title: str, tab: str = "txt2img") -> scripts.Script:
    """The script instance with this title (case-insensitive) in the tab's runner."""
    s = runner(tab).script(title)
    if s is None:
        raise KeyError(f"no script titled {title!r} in {tab}; have {[x.title() for x in runner(tab).scripts]}")
    return s


def components(title: str, tab: str = "txt2img") -> list:
    """The gradio components the script's ui() returned when the tab's UI was built (in args order)."""
    s = script(title, tab)
    return list(runner(tab).inputs[s.args_from : s.args_to])


def default_script_args(tab: str = "txt2img") -> list:
    """Script args as the browser would send them with untouched UI: inputs[0] = 0 ('None' script), then every
    component's current value."""
    r = runner(tab)
    return [0] + [getattr(c, "value", None) for c in r.inputs[1:]]


def _apply_script_args(args: list, tab: str, script_args: dict | None, alwayson_scripts: dict | None) -> list:
    if script_args:
        for title, values in script_args.items():
            s = script(title, tab)
            if isinstance(values, dict):
                labels = [getattr(c, "label", None) for c in runner(tab).inputs[s.args_from : s.args_to]]
                for key, v in values.items():
                    idx = key if isinstance(key, int) else labels.index(key)
                    args[s.args_from + idx] = v
            else:
                for i, v in enumerate(list(values)[: s.args_to - s.args_from]):
                    args[s.args_from + i] = v
    if alwayson_scripts:
        for title, spec in alwayson_scripts.items():
            s = script(title, tab)
            for i, v in enumerate(list(spec.get("args", []))[: s.args_to - s.args_from]):
                args[s.args_from + i] = v
    return args


_DEFAULT_FIELDS = {
    "sampler_name": "Euler",
    "scheduler": "Automatic",
    "steps": 5,
    "width": 64,
    "height": 64,
    "seed": 1,
    "cfg_scale": 7.0,
}


def build_p(
    tab: str = "txt2img",
    *,
    script_args: dict | None = None,
    alwayson_scripts: dict | None = None,
    full_script_args: list | None = None,
    **fields: Any,
):
    """Build a processing object like modules/txt2img.py txt2img_create_processing (or img2img's): fields are
    StableDiffusionProcessing* keyword arguments; script args = UI defaults overridden by
    script_args={title: [values...] or {label_or_index: value}} and/or alwayson_scripts={title: {"args": [...]}},
    or given whole as full_script_args. Defaults: Euler, Automatic, 5 steps, 64x64, seed 1, CFG 7."""
    st = current()
    kw = {**_DEFAULT_FIELDS, **fields}
    if tab == "txt2img" and "hr_upscale" in kw:
        kw["hr_scale"] = kw.pop("hr_upscale")
    if tab == "img2img":
        p = processing.StableDiffusionProcessingImg2Img(sd_model=shared.sd_model, **kw)
    else:
        p = processing.StableDiffusionProcessingTxt2Img(sd_model=shared.sd_model, **kw)
    args = (
        list(full_script_args)
        if full_script_args is not None
        else _apply_script_args(default_script_args(tab), tab, script_args, alwayson_scripts)
    )
    p.scripts = runner(tab)
    p.script_args = tuple(args)
    st.last_p = p
    return p


def run_p(p, tab: str = "txt2img"):
    """mirrors modules/txt2img.py txt2img(): state.begin, the selected script's run() or process_images, p.close()."""
    st = current()
    shared.state.begin(job=tab)
    try:
        processed = runner(tab).run(p, *p.script_args)
        if processed is None:
            processed = processing.process_images(p)
    finally:
        p.close()
        shared.state.end()
        shared.total_tqdm.clear()
    st.last_processed = processed
    return processed


def txt2img(**fields: Any):
    """Generate like the txt2img tab; see build_p for the arguments. Returns processing.Processed (images are
    float [3, H, W] tensors in [0, 1]; infotexts; seed). The processing object is harness.current().last_p."""
    return run_p(build_p("txt2img", **fields), "txt2img")


def img2img(init_images: list, **fields: Any):
    """Generate like the img2img tab (init_images: [3, H, W] tensors in [0, 1] or PIL images)."""
    return run_p(build_p("img2img", init_images=init_images, **fields), "img2img")


def api():
    """The stand-in modules.api.api.Api (created on first use, after the UI, like the WebUI's)."""
    st = current()
    if st.api is None:
        from modules.api.api import Api

        st.api = Api()
    return st.api


def xyz():
    """The loaded X/Y/Z plot module (the same object extensions find via scripts.scripts_data)."""
    for d in scripts.scripts_data:
        if d.path.endswith("xyz_grid.py"):
            return d.module
    raise RuntimeError("xyz_grid not registered")


def run_xyz(
    x_label: str,
    x_values_text: str,
    y_label: str | None = None,
    y_values_text: str | None = None,
    tab: str = "txt2img",
    make_p: Callable[[], Any] | None = None,
    **fields: Any,
):
    """Run an X/Y/Z plot over build_p(tab, **fields) (or make_p()); returns xyz_grid.XYZRun with .cells."""
    shared.state.begin(job="xyz")
    try:
        return xyz().run_axes(
            make_p or (lambda: build_p(tab, **fields)), x_label, x_values_text, y_label, y_values_text
        )
    finally:
        shared.state.end()


def paste_infotext(text: str, tab: str = "txt2img") -> dict[Any, Any]:
    """mirrors pasting infotext into the prompt box and pressing the paste button (connect_paste): returns
    {component: new value} for the components that change."""
    return infotext_utils.paste_values(infotext_utils.paste_fields[tab]["fields"], text)


def pasted_script_args(text: str, title: str, tab: str = "txt2img") -> list:
    """The values a script's components hold after pasting `text` (unchanged components keep their defaults)."""
    changes = paste_infotext(text, tab)
    return [changes.get(c, getattr(c, "value", None)) for c in components(title, tab)]


def send_to(dest_tab: str, source_tab: str = "txt2img", values: dict | None = None) -> dict[Any, Any]:
    """mirrors pressing "Send to <dest_tab>" under `source_tab`'s gallery (connect_paste_params_buttons, tab-to-tab
    part; the image itself is not modelled). `values`: {source component: value} as the user left them (others
    hold their `.value`). Returns {destination component: new value}; empty where nothing is copied (from img2img)."""
    tab = current().img2img if source_tab == "img2img" else current().txt2img
    return infotext_utils.send_values(tab.send_buttons[dest_tab], values)


def sent_script_args(
    source_args: list, title: str, dest_tab: str = "img2img", source_tab: str = "txt2img", dest_args: list | None = None
) -> list:
    """The values a script's components in `dest_tab` hold after "Send to", when its components in `source_tab` hold
    `source_args` and those in `dest_tab` held `dest_args` (default: their `.value`)."""
    sources = components(title, source_tab)
    destinations = components(title, "img2img" if dest_tab == "inpaint" else dest_tab)
    changes = send_to(dest_tab, source_tab, dict(zip(sources, source_args, strict=True)))
    before = dest_args if dest_args is not None else [getattr(c, "value", None) for c in destinations]
    return [changes.get(c, v) for c, v in zip(destinations, before, strict=True)]


_BUILTIN_OPTION_KEYS = set(shared.opts.data_labels.keys())
