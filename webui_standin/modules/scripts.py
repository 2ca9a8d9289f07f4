"""Stand-in for modules/scripts.py (v1.10.1): the Script base class, loading of script files and ScriptRunner.

What is modelled: every script file's Script subclasses are registered (``scripts_data``); each tab's ScriptRunner
instantiates them, sorts them into always-on and selectable ones by ``show()``, builds their UIs into one flat list
of inputs (item 0 is the "Script" dropdown) recording each script's ``args_from``/``args_to`` slice, and calls the
always-on hooks with ``p.script_args[args_from:args_to]``, reporting (not raising) a script's exception.
"""

from __future__ import annotations

import inspect
import os
import re
import string
import sys
from collections import namedtuple
from dataclasses import dataclass, field
from typing import Any

import gradio as gr
from modules import errors, extensions, paths, script_callbacks, script_loading, shared

AlwaysVisible = object()
"""Models scripts.AlwaysVisible: what show() returns for an always-on script."""


# ---------------------------------------------------------------------------------------------------------------
# the argument objects some hooks receive (models of the classes of the same names)


@dataclass(eq=False)
class MaskBlendArgs:
    """Models scripts.MaskBlendArgs: the latents of one inpainting blend; ``is_final_blend`` is true for the blend
    after sampling (the one without a denoiser)."""

    current_latent: Any
    nmask: Any
    init_latent: Any
    mask: Any
    blended_latent: Any
    denoiser: Any = None
    sigma: Any = None
    is_final_blend: bool = field(init=False)

    def __post_init__(self) -> None:
        self.is_final_blend = self.denoiser is None


@dataclass(eq=False)
class PostSampleArgs:
    """Models scripts.PostSampleArgs: the latent samples right after sampling."""

    samples: Any


@dataclass(eq=False)
class PostprocessImageArgs:
    """Models scripts.PostprocessImageArgs: one output image, replaceable by the script."""

    image: Any


@dataclass(eq=False)
class PostProcessMaskOverlayArgs:
    """Models scripts.PostProcessMaskOverlayArgs: the image's index in the batch, the mask the output is composited
    with and the overlay (the original image where it is kept); a script may replace either."""

    index: Any
    mask_for_overlay: Any
    overlay_image: Any


@dataclass(eq=False)
class PostprocessBatchListArgs:
    """Models scripts.PostprocessBatchListArgs: the batch's images as a list a script may change."""

    images: Any


@dataclass
class OnComponent:
    """Models scripts.OnComponent: what on_before_component/on_after_component callbacks receive."""

    component: Any


# ---------------------------------------------------------------------------------------------------------------
# Script

# Hooks a script may override; the base class does nothing in each.  (name, what the WebUI calls it with)
_SCRIPT_HOOKS = {
    "ui": "is_img2img -> list of components",
    "run": "p, *args (the selected script only)",
    "setup": "p, *args: first, also in the API",
    "before_process": "p, *args: before anything of the job",
    "process": "p, *args: after the prompts are set",
    "before_process_batch": "p, *args, batch_number, prompts, seeds, subseeds",
    "after_extra_networks_activate": "p, *args, ...",
    "process_before_every_sampling": "p, *args, x, noise, c, uc: before every sampling pass (twice with hires fix)",
    "process_batch": "p, *args, batch_number, prompts, seeds, subseeds",
    "postprocess_batch": "p, *args, images, batch_number",
    "postprocess_batch_list": "p, PostprocessBatchListArgs, *args, batch_number",
    "on_mask_blend": "p, MaskBlendArgs, *args",
    "post_sample": "p, PostSampleArgs, *args",
    "postprocess_image": "p, PostprocessImageArgs, *args",
    "postprocess_maskoverlay": "p, PostProcessMaskOverlayArgs, *args",
    "postprocess_image_after_composite": "p, PostprocessImageArgs, *args",
    "postprocess": "p, Processed, *args: at the end of the job",
    "before_hr": "p, *args: before the hires pass",
    "before_component": "component, **kwargs",
    "after_component": "component, **kwargs",
}


def _does_nothing(self, *args, **kwargs):
    return None


def _elem_prefix(script: Script) -> str:
    """'txt2img_'/'img2img_' when the script shows the same way on both tabs (so ids would collide), else ''."""
    if script.show(True) != script.show(False):
        return ""
    return ("img2img" if script.is_img2img else "txt2img") + "_"


class Script:
    """Models scripts.Script: the base class of every script.  All hooks (see _SCRIPT_HOOKS) do nothing,
    show() is True (selectable on both tabs), describe() is empty."""

    name: str | None = None
    section: str | None = None
    filename: str | None = None
    args_from: int | None = None
    args_to: int | None = None
    alwayson = False
    is_txt2img = False
    is_img2img = False
    tabname: str | None = None
    group = None
    create_group = True
    infotext_fields: Any = None
    paste_field_names: Any = None
    api_info: Any = None
    on_before_component_elem_id: Any = None
    on_after_component_elem_id: Any = None
    setup_for_ui_only = False
    controls: Any = None

    def title(self) -> str:
        raise NotImplementedError()

    def show(self, is_img2img: bool):
        return True

    def describe(self) -> str:
        return ""

    def _remember_component_callback(self, attribute: str, elem_id: str, callback) -> None:
        if getattr(self, attribute) is None:
            setattr(self, attribute, [])
        getattr(self, attribute).append((elem_id, callback))

    def on_before_component(self, callback, *, elem_id):
        """Models Script.on_before_component: ``callback(OnComponent)`` before the component with that elem_id."""
        self._remember_component_callback("on_before_component_elem_id", elem_id, callback)

    def on_after_component(self, callback, *, elem_id):
        """Models Script.on_after_component: ``callback(OnComponent)`` after the component with that elem_id."""
        self._remember_component_callback("on_after_component_elem_id", elem_id, callback)

    def elem_id(self, item_id: str) -> str:
        """Models Script.elem_id: 'script_' + tab prefix + the title (lower case, spaces as '_', only [a-z_0-9])
        + '_' + item_id."""
        title = "".join(ch for ch in re.sub(r"\s", "_", self.title().lower()) if ch in _ID_CHARS)
        return "script_" + _elem_prefix(self) + title + "_" + item_id


_ID_CHARS = frozenset(string.ascii_lowercase + string.digits + "_")

for _hook in _SCRIPT_HOOKS:
    setattr(Script, _hook, _does_nothing)


class ScriptBuiltinUI(Script):
    """Models scripts.ScriptBuiltinUI: built-in sections; their elem ids have no 'script_' part and their setup()
    runs only for UI jobs."""

    setup_for_ui_only = True

    def elem_id(self, item_id: str) -> str:
        return _elem_prefix(self) + item_id


# ---------------------------------------------------------------------------------------------------------------
# loading script files

current_basedir = paths.script_path


def basedir() -> str:
    """Models scripts.basedir: the directory of the extension whose script is being imported."""
    return current_basedir


ScriptFile = namedtuple("ScriptFile", ["basedir", "filename", "path"])
ScriptClassData = namedtuple("ScriptClassData", ["script_class", "path", "basedir", "module"])
scripts_data: list[ScriptClassData] = []
"""Models scripts.scripts_data: one entry per Script subclass found in a loaded script file"""
postprocessing_scripts_data: list = []


def register_scripts_from_module(module, scriptfile: ScriptFile) -> None:
    """Models the registration step of scripts.load_scripts: every Script subclass in the module's namespace."""
    found = [obj for obj in vars(module).values() if inspect.isclass(obj) and issubclass(obj, Script)]
    scripts_data.extend(ScriptClassData(cls, scriptfile.path, scriptfile.basedir, module) for cls in found)


def _import_one(scriptfile: ScriptFile) -> None:
    """Imports one script file with its extension's folder first on sys.path (not for the WebUI's own folder) and
    basedir() answering that folder; both are restored afterwards."""
    global current_basedir
    saved_path = sys.path
    if scriptfile.basedir != paths.script_path:
        sys.path = [scriptfile.basedir, *saved_path]
    current_basedir = scriptfile.basedir
    try:
        register_scripts_from_module(script_loading.load_module(scriptfile.path), scriptfile)
    finally:
        sys.path = saved_path
        current_basedir = paths.script_path


def load_script_files(scripts_list: list[ScriptFile]) -> None:
    """Models the loading loop of scripts.load_scripts: a file that fails to import is reported and skipped."""
    for scriptfile in scripts_list:
        try:
            _import_one(scriptfile)
        except Exception:
            errors.report(f"Error loading script: {scriptfile.filename}", exc_info=True)


def list_extension_scripts(extension_root: str) -> list[ScriptFile]:
    """Models Extension.list_files('scripts', '.py'): the extension's top-level scripts/*.py, sorted by name."""
    folder = os.path.join(extension_root, "scripts")
    names = sorted(os.listdir(folder)) if os.path.isdir(folder) else []
    return [
        ScriptFile(extension_root, name, os.path.join(folder, name))
        for name in names
        if name.lower().endswith(".py") and os.path.isfile(os.path.join(folder, name))
    ]


def load_extension_scripts(extension_root: str) -> None:
    """Stand-in entry: registers the extension (modules.extensions) and loads its scripts/*.py like the WebUI."""
    extension_root = os.path.abspath(extension_root)
    known = {os.path.realpath(e.path) for e in extensions.extensions}
    if os.path.realpath(extension_root) not in known:
        extensions.extensions.append(extensions.Extension(os.path.basename(extension_root), extension_root))
    load_script_files(list_extension_scripts(extension_root))


def wrap_call(func, filename, funcname, *args, default=None, **kwargs):
    """Models scripts.wrap_call: calls func; an exception is reported as "Error calling: file/func" and ``default``
    is returned instead."""
    try:
        result = func(*args, **kwargs)
    except Exception:
        errors.report(f"Error calling: {filename}/{funcname}", exc_info=True)
        result = default
    return result


# ---------------------------------------------------------------------------------------------------------------
# ScriptRunner


def _always_on_hook(name: str, doc: str):
    """A ScriptRunner method that calls hook ``name`` of every always-on script as
    ``hook(p, *objects, *that script's args, **kwargs)``."""

    def method(self, p, *objects, **kwargs):
        self._call_always_on(name, p, objects, kwargs)

    method.__name__ = name
    method.__doc__ = doc
    return method


class ScriptRunner:
    """Models scripts.ScriptRunner: builds scripts' UIs (args_from/args_to into one flat inputs list whose item 0 is
    the 'Script' dropdown) and runs the always-on hooks with p.script_args[args_from:args_to]."""

    def __init__(self) -> None:
        self.scripts: list[Script] = []
        self.selectable_scripts: list[Script] = []
        self.alwayson_scripts: list[Script] = []
        self.titles: list[str] = []
        self.title_map: dict[str, Script] = {}
        self.infotext_fields: list = []
        self.paste_field_names: list = []
        self.inputs: list = [None]
        self.on_before_component_elem_id: dict = {}
        self.on_after_component_elem_id: dict = {}

    # --- instantiation -------------------------------------------------------------------------------------------

    def initialize_scripts(self, is_img2img: bool) -> None:
        """Models ScriptRunner.initialize_scripts: one instance of every registered class for this tab; show()
        returning AlwaysVisible makes it always-on, another true value selectable, a false one leaves it out."""
        for bucket in (self.scripts, self.alwayson_scripts, self.selectable_scripts):
            bucket.clear()
        tab = "img2img" if is_img2img else "txt2img"
        for data in scripts_data:
            try:
                script = data.script_class()
            except Exception:
                errors.report(f"Error # failed to initialize Script {data.module}: ", exc_info=True)
                continue
            script.filename, script.tabname = data.path, tab
            script.is_img2img, script.is_txt2img = is_img2img, not is_img2img
            shown = script.show(is_img2img)
            if not shown:
                continue
            script.alwayson = shown is AlwaysVisible
            self.scripts.append(script)
            (self.alwayson_scripts if script.alwayson else self.selectable_scripts).append(script)
        self.apply_on_before_component_callbacks()

    def apply_on_before_component_callbacks(self) -> None:
        """Models ScriptRunner.apply_on_before_component_callbacks: moves the scripts' on_before/after_component
        wishes into the runner's elem_id -> [(callback, script)] tables."""
        for script in self.scripts:
            for attribute in ("on_before_component_elem_id", "on_after_component_elem_id"):
                wishes = getattr(script, attribute) or []
                table = getattr(self, attribute)
                for elem_id, callback in wishes:
                    table.setdefault(elem_id, []).append((callback, script))
                wishes.clear()

    # --- UI --------------------------------------------------------------------------------------------------------

    def create_script_ui(self, script: Script) -> None:
        """Models ScriptRunner.create_script_ui: the script's slice starts at the current end of the inputs; a
        failing UI is reported and leaves the slice empty."""
        script.args_from = script.args_to = len(self.inputs)
        try:
            self.create_script_ui_inner(script)
        except Exception:
            errors.report(f"Error creating UI for {script.name}: ", exc_info=True)

    @staticmethod
    def _api_arg(control):
        """The API's description of one control (models.ScriptArg): its label and whichever of value, minimum,
        maximum, step and choices it has (gradio 3.41 choices may be (label, value) tuples: the label is kept)."""
        import modules.api.models as api_models

        described = api_models.ScriptArg(label=control.label or "")
        for attribute in ("value", "minimum", "maximum", "step"):
            if getattr(control, attribute, None) is not None:
                setattr(described, attribute, getattr(control, attribute))
        choices = getattr(control, "choices", None)
        if choices is not None:
            described.choices = [c[0] if isinstance(c, tuple) else c for c in choices]
        return described

    def create_script_ui_inner(self, script: Script) -> None:
        """Models ScriptRunner.create_script_ui_inner: calls ui(), records api_info, infotext_fields,
        paste_field_names and the slice of the controls in the inputs."""
        import modules.api.models as api_models

        controls = wrap_call(script.ui, script.filename, "ui", script.is_img2img)
        script.controls = controls
        if controls is None:
            return
        script.name = wrap_call(script.title, script.filename, "title", default=script.filename).lower()
        for control in controls:
            control.custom_script_source = os.path.basename(script.filename)
        script.api_info = api_models.ScriptInfo(
            name=script.name,
            is_img2img=script.is_img2img,
            is_alwayson=script.alwayson,
            args=[self._api_arg(control) for control in controls],
        )
        self.infotext_fields.extend(script.infotext_fields or [])
        self.paste_field_names.extend(script.paste_field_names or [])
        self.inputs.extend(controls)
        script.args_to = len(self.inputs)

    def setup_ui_for_section(self, section, scriptlist=None) -> None:
        """Models ScriptRunner.setup_ui_for_section: the UIs of the given scripts (default: the always-on ones;
        always-on scripts only when their section matches), each in a gr.Group unless create_group is off; the
        group is visible for always-on scripts only."""
        for script in self.alwayson_scripts if scriptlist is None else scriptlist:
            if script.alwayson and script.section != section:
                continue
            if not script.create_group:
                self.create_script_ui(script)
                continue
            with gr.Group(visible=script.alwayson) as group:
                self.create_script_ui(script)
            script.group = group

    def prepare_ui(self) -> None:
        """Models ScriptRunner.prepare_ui: inputs restart with the slot of the "Script" dropdown."""
        self.inputs = [None]

    def setup_ui(self) -> list:
        """Models ScriptRunner.setup_ui: always-on scripts of section None, then the 'Script' dropdown (inputs[0])
        and the selectable scripts."""

        def title_of(script: Script, fallback: str) -> str:
            return wrap_call(script.title, script.filename, "title") or fallback

        self.title_map = {title_of(s, s.filename).lower(): s for s in self.scripts}
        self.titles = [title_of(s, f"{s.filename} [error]") for s in self.selectable_scripts]

        self.setup_ui_for_section(None)
        choices = ["None", *self.titles]
        self.inputs[0] = gr.Dropdown(label="Script", elem_id="script_list", choices=choices, value="None", type="index")
        self.setup_ui_for_section(None, self.selectable_scripts)

        dropdown = self.inputs[0]
        self.infotext_fields.append((dropdown, lambda params: gr.update(value=params.get("Script", "None"))))
        self.apply_on_before_component_callbacks()
        return self.inputs

    # --- running ---------------------------------------------------------------------------------------------------

    def run(self, p, *args):
        """Models ScriptRunner.run: the script chosen in the dropdown (args[0], 0 = None) runs with its slice of
        args; returns its Processed, or None when no script is chosen."""
        chosen = args[0]
        if not chosen:
            return None
        script = self.selectable_scripts[chosen - 1]
        if script is None:
            return None
        processed = script.run(p, *args[script.args_from : script.args_to])
        shared.total_tqdm.clear()
        return processed

    def _call_always_on(self, name: str, p, objects: tuple, kwargs: dict) -> None:
        for script in self.alwayson_scripts:
            own_args = p.script_args[script.args_from : script.args_to]
            try:
                getattr(script, name)(p, *objects, *own_args, **kwargs)
            except Exception:
                errors.report(f"Error running {name}: {script.filename}", exc_info=True)

    before_process = _always_on_hook("before_process", "Models ScriptRunner.before_process.")
    process = _always_on_hook("process", "Models ScriptRunner.process.")
    process_before_every_sampling = _always_on_hook(
        "process_before_every_sampling", "Models ScriptRunner.process_before_every_sampling (kwargs x, noise, c, uc)."
    )
    before_process_batch = _always_on_hook("before_process_batch", "Models ScriptRunner.before_process_batch.")
    after_extra_networks_activate = _always_on_hook(
        "after_extra_networks_activate", "Models ScriptRunner.after_extra_networks_activate."
    )
    process_batch = _always_on_hook("process_batch", "Models ScriptRunner.process_batch.")
    postprocess = _always_on_hook("postprocess", "Models ScriptRunner.postprocess (p, processed).")
    postprocess_batch_list = _always_on_hook("postprocess_batch_list", "Models ScriptRunner.postprocess_batch_list.")
    post_sample = _always_on_hook("post_sample", "Models ScriptRunner.post_sample.")
    on_mask_blend = _always_on_hook("on_mask_blend", "Models ScriptRunner.on_mask_blend.")
    postprocess_image = _always_on_hook("postprocess_image", "Models ScriptRunner.postprocess_image.")
    postprocess_maskoverlay = _always_on_hook("postprocess_maskoverlay", "Models ScriptRunner.postprocess_maskoverlay.")
    postprocess_image_after_composite = _always_on_hook(
        "postprocess_image_after_composite", "Models ScriptRunner.postprocess_image_after_composite."
    )
    before_hr = _always_on_hook("before_hr", "Models ScriptRunner.before_hr.")

    def postprocess_batch(self, p, images, **kwargs) -> None:
        """Models ScriptRunner.postprocess_batch: the images travel as the keyword ``images`` after the args."""
        self._call_always_on("postprocess_batch", p, (), {"images": images, **kwargs})

    def setup_scrips(self, p, *, is_ui: bool = True) -> None:
        """Models ScriptRunner.setup_scrips (sic): setup() of the always-on scripts; UI-only ones are skipped for
        API jobs."""
        for script in self.alwayson_scripts:
            if script.setup_for_ui_only and not is_ui:
                continue
            try:
                script.setup(p, *p.script_args[script.args_from : script.args_to])
            except Exception:
                errors.report(f"Error running setup: {script.filename}", exc_info=True)

    # --- lookup ----------------------------------------------------------------------------------------------------

    def script(self, title: str):
        """Models ScriptRunner.script: the script with that title (case-insensitive), or None."""
        return self.title_map.get(title.lower())

    def set_named_arg(self, args, script_type, arg_elem_id, value):
        """Models ScriptRunner.set_named_arg: in a list of args (changed in place) or a tuple (a new one is
        returned), sets the arg of the first control of the script class named ``script_type`` whose elem_id
        contains ``arg_elem_id``; None when there is no such script or control, or args is neither."""
        script = next((s for s in self.scripts if type(s).__name__ == script_type), None)
        if script is None:
            return None
        position = next((n for n, c in enumerate(script.controls) if arg_elem_id in c.elem_id), None)
        if position is None:
            return None
        index = script.args_from + position
        if isinstance(args, list):
            args[index] = value
            return args
        if isinstance(args, tuple):
            return (*args[:index], value, *args[index + 1 :])
        return None


scripts_txt2img: ScriptRunner = ScriptRunner()
scripts_img2img: ScriptRunner = ScriptRunner()
scripts_current: ScriptRunner | None = None


def create_runners() -> None:
    """Models the end of scripts.load_scripts: fresh txt2img/img2img runners."""
    global scripts_txt2img, scripts_img2img
    scripts_txt2img, scripts_img2img = ScriptRunner(), ScriptRunner()


def clear() -> None:
    """Stand-in entry: what scripts.load_scripts does before loading (clear scripts_data and all callbacks)."""
    scripts_data.clear()
    postprocessing_scripts_data.clear()
    script_callbacks.clear_callbacks()
