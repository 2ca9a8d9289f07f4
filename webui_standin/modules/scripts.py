"""Stand-in for modules/scripts.py (v1.10.1): Script base class, script loading and ScriptRunner."""

from __future__ import annotations

import inspect
import os
import re
import sys
from collections import namedtuple
from dataclasses import dataclass
from typing import Any

import gradio as gr
from modules import errors, extensions, paths, script_callbacks, script_loading, shared

AlwaysVisible = object()


class MaskBlendArgs:
    """mirrors scripts.MaskBlendArgs"""

    def __init__(self, current_latent, nmask, init_latent, mask, blended_latent, denoiser=None, sigma=None) -> None:
        self.current_latent = current_latent
        self.nmask = nmask
        self.init_latent = init_latent
        self.mask = mask
        self.blended_latent = blended_latent
        self.denoiser = denoiser
        self.is_final_blend = denoiser is None
        self.sigma = sigma


class PostSampleArgs:
    """mirrors scripts.PostSampleArgs"""

    def __init__(self, samples) -> None:
        self.samples = samples


class PostprocessImageArgs:
    """mirrors scripts.PostprocessImageArgs"""

    def __init__(self, image) -> None:
        self.image = image


class PostProcessMaskOverlayArgs:
    """mirrors scripts.PostProcessMaskOverlayArgs: the image's index in the batch, the mask the output is composited
    with and the overlay (the original image where it is kept); a script may replace either."""

    def __init__(self, index, mask_for_overlay, overlay_image) -> None:
        self.index = index
        self.mask_for_overlay = mask_for_overlay
        self.overlay_image = overlay_image


class PostprocessBatchListArgs:
    """mirrors scripts.PostprocessBatchListArgs"""

    def __init__(self, images) -> None:
        self.images = images


@dataclass
class OnComponent:
    """mirrors scripts.OnComponent"""

    component: Any


class Script:
    """mirrors scripts.Script: the base class of every script (all hooks default to no-ops)."""

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

    def ui(self, is_img2img: bool):
        pass

    def show(self, is_img2img: bool):
        return True

    def run(self, p, *args):
        pass

    def setup(self, p, *args):
        pass

    def before_process(self, p, *args):
        pass

    def process(self, p, *args):
        pass

    def before_process_batch(self, p, *args, **kwargs):
        pass

    def after_extra_networks_activate(self, p, *args, **kwargs):
        pass

    def process_before_every_sampling(self, p, *args, **kwargs):
        """Called before every sampling pass (twice with hires fix); kwargs: x, noise, c, uc."""
        pass

    def process_batch(self, p, *args, **kwargs):
        pass

    def postprocess_batch(self, p, *args, **kwargs):
        pass

    def postprocess_batch_list(self, p, pp: PostprocessBatchListArgs, *args, **kwargs):
        pass

    def on_mask_blend(self, p, mba: MaskBlendArgs, *args):
        pass

    def post_sample(self, p, ps: PostSampleArgs, *args):
        pass

    def postprocess_image(self, p, pp: PostprocessImageArgs, *args):
        pass

    def postprocess_maskoverlay(self, p, ppmo: PostProcessMaskOverlayArgs, *args):
        pass

    def postprocess_image_after_composite(self, p, pp: PostprocessImageArgs, *args):
        pass

    def postprocess(self, p, processed, *args):
        pass

    def before_component(self, component, **kwargs):
        pass

    def after_component(self, component, **kwargs):
        pass

    def on_before_component(self, callback, *, elem_id):  # mirrors Script.on_before_component
        if self.on_before_component_elem_id is None:
            self.on_before_component_elem_id = []
        self.on_before_component_elem_id.append((elem_id, callback))

    def on_after_component(self, callback, *, elem_id):  # mirrors Script.on_after_component
        if self.on_after_component_elem_id is None:
            self.on_after_component_elem_id = []
        self.on_after_component_elem_id.append((elem_id, callback))

    def describe(self) -> str:
        return ""

    def elem_id(self, item_id: str) -> str:
        """mirrors Script.elem_id: 'script_<tab>_<title>_<item_id>'."""
        need_tabname = self.show(True) == self.show(False)
        tabkind = "img2img" if self.is_img2img else "txt2img"
        tabname = f"{tabkind}_" if need_tabname else ""
        title = re.sub(r"[^a-z_0-9]", "", re.sub(r"\s", "_", self.title().lower()))
        return f"script_{tabname}{title}_{item_id}"

    def before_hr(self, p, *args):
        pass


class ScriptBuiltinUI(Script):
    """mirrors scripts.ScriptBuiltinUI"""

    setup_for_ui_only = True

    def elem_id(self, item_id: str) -> str:
        need_tabname = self.show(True) == self.show(False)
        tabname = ("img2img" if self.is_img2img else "txt2img") + "_" if need_tabname else ""
        return f"{tabname}{item_id}"


current_basedir = paths.script_path


def basedir() -> str:
    """mirrors scripts.basedir: the directory of the extension whose script is being imported."""
    return current_basedir


ScriptFile = namedtuple("ScriptFile", ["basedir", "filename", "path"])
ScriptClassData = namedtuple("ScriptClassData", ["script_class", "path", "basedir", "module"])
scripts_data: list[ScriptClassData] = []
"""mirrors scripts.scripts_data: one entry per Script subclass found in a loaded script file"""
postprocessing_scripts_data: list = []


def register_scripts_from_module(module, scriptfile: ScriptFile) -> None:
    """mirrors the inner register_scripts_from_module of scripts.load_scripts."""
    for script_class in module.__dict__.values():
        if not inspect.isclass(script_class):
            continue
        if issubclass(script_class, Script):
            scripts_data.append(ScriptClassData(script_class, scriptfile.path, scriptfile.basedir, module))


def load_script_files(scripts_list: list[ScriptFile]) -> None:
    """mirrors the loop of scripts.load_scripts: the script's basedir is prepended to sys.path while it is imported
    (unless it is the WebUI root) and sys.path is restored afterwards; errors are reported, not raised."""
    global current_basedir
    syspath = sys.path
    for scriptfile in scripts_list:
        try:
            if scriptfile.basedir != paths.script_path:
                sys.path = [scriptfile.basedir] + sys.path
            current_basedir = scriptfile.basedir
            script_module = script_loading.load_module(scriptfile.path)
            register_scripts_from_module(script_module, scriptfile)
        except Exception:
            errors.report(f"Error loading script: {scriptfile.filename}", exc_info=True)
        finally:
            sys.path = syspath
            current_basedir = paths.script_path


def list_extension_scripts(extension_root: str) -> list[ScriptFile]:
    """mirrors Extension.list_files('scripts', '.py'): the extension's top-level scripts/*.py, sorted."""
    dirpath = os.path.join(extension_root, "scripts")
    if not os.path.isdir(dirpath):
        return []
    res = []
    for filename in sorted(os.listdir(dirpath)):
        path = os.path.join(dirpath, filename)
        if os.path.isfile(path) and os.path.splitext(filename)[1].lower() == ".py":
            res.append(ScriptFile(extension_root, filename, path))
    return res


def load_extension_scripts(extension_root: str) -> None:
    """Stand-in entry: registers the extension (modules.extensions) and loads its scripts/*.py like the WebUI."""
    extension_root = os.path.abspath(extension_root)
    if not any(os.path.realpath(e.path) == os.path.realpath(extension_root) for e in extensions.extensions):
        extensions.extensions.append(extensions.Extension(os.path.basename(extension_root), extension_root))
    load_script_files(list_extension_scripts(extension_root))


def wrap_call(func, filename, funcname, *args, default=None, **kwargs):
    """mirrors scripts.wrap_call: exceptions are reported and `default` returned."""
    try:
        return func(*args, **kwargs)
    except Exception:
        errors.report(f"Error calling: {filename}/{funcname}", exc_info=True)
    return default


class ScriptRunner:
    """mirrors scripts.ScriptRunner: builds scripts' UIs (args_from/args_to into one flat inputs list whose item 0 is
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

    def initialize_scripts(self, is_img2img: bool) -> None:
        """mirrors ScriptRunner.initialize_scripts: instantiates every registered script class for this tab."""
        self.scripts.clear()
        self.alwayson_scripts.clear()
        self.selectable_scripts.clear()
        for script_data in scripts_data:
            try:
                script = script_data.script_class()
            except Exception:
                errors.report(f"Error # failed to initialize Script {script_data.module}: ", exc_info=True)
                continue
            script.filename = script_data.path
            script.is_txt2img = not is_img2img
            script.is_img2img = is_img2img
            script.tabname = "img2img" if is_img2img else "txt2img"
            visibility = script.show(script.is_img2img)
            if visibility == AlwaysVisible:
                self.scripts.append(script)
                self.alwayson_scripts.append(script)
                script.alwayson = True
            elif visibility:
                self.scripts.append(script)
                self.selectable_scripts.append(script)
        self.apply_on_before_component_callbacks()

    def apply_on_before_component_callbacks(self) -> None:  # mirrors ScriptRunner.apply_on_before_component_callbacks
        for script in self.scripts:
            on_before = script.on_before_component_elem_id or []
            on_after = script.on_after_component_elem_id or []
            for elem_id, callback in on_before:
                self.on_before_component_elem_id.setdefault(elem_id, []).append((callback, script))
            for elem_id, callback in on_after:
                self.on_after_component_elem_id.setdefault(elem_id, []).append((callback, script))
            on_before.clear()
            on_after.clear()

    def create_script_ui(self, script: Script) -> None:  # mirrors ScriptRunner.create_script_ui
        script.args_from = len(self.inputs)
        script.args_to = len(self.inputs)
        try:
            self.create_script_ui_inner(script)
        except Exception:
            errors.report(f"Error creating UI for {script.name}: ", exc_info=True)

    def create_script_ui_inner(self, script: Script) -> None:
        """mirrors ScriptRunner.create_script_ui_inner: calls ui(), records api_info, infotext_fields and the
        components' positions."""
        import modules.api.models as api_models

        controls = wrap_call(script.ui, script.filename, "ui", script.is_img2img)
        script.controls = controls
        if controls is None:
            return
        script.name = wrap_call(script.title, script.filename, "title", default=script.filename).lower()
        api_args = []
        for control in controls:
            control.custom_script_source = os.path.basename(script.filename)
            arg_info = api_models.ScriptArg(label=control.label or "")
            for field in ("value", "minimum", "maximum", "step"):
                v = getattr(control, field, None)
                if v is not None:
                    setattr(arg_info, field, v)
            choices = getattr(control, "choices", None)  # gradio 3.41: str or (str, value) tuples
            if choices is not None:
                arg_info.choices = [x[0] if isinstance(x, tuple) else x for x in choices]
            api_args.append(arg_info)
        script.api_info = api_models.ScriptInfo(
            name=script.name, is_img2img=script.is_img2img, is_alwayson=script.alwayson, args=api_args
        )
        if script.infotext_fields is not None:
            self.infotext_fields += script.infotext_fields
        if script.paste_field_names is not None:
            self.paste_field_names += script.paste_field_names
        self.inputs += controls
        script.args_to = len(self.inputs)

    def setup_ui_for_section(self, section, scriptlist=None) -> None:  # mirrors ScriptRunner.setup_ui_for_section
        if scriptlist is None:
            scriptlist = self.alwayson_scripts
        for script in scriptlist:
            if script.alwayson and script.section != section:
                continue
            if script.create_group:
                with gr.Group(visible=script.alwayson) as group:
                    self.create_script_ui(script)
                script.group = group
            else:
                self.create_script_ui(script)

    def prepare_ui(self) -> None:  # mirrors ScriptRunner.prepare_ui
        self.inputs = [None]

    def setup_ui(self) -> list:
        """mirrors ScriptRunner.setup_ui: always-on scripts of section None, then the 'Script' dropdown (inputs[0])
        and the selectable scripts."""
        all_titles = [wrap_call(script.title, script.filename, "title") or script.filename for script in self.scripts]
        self.title_map = {title.lower(): script for title, script in zip(all_titles, self.scripts, strict=True)}
        self.titles = [
            wrap_call(script.title, script.filename, "title") or f"{script.filename} [error]"
            for script in self.selectable_scripts
        ]

        self.setup_ui_for_section(None)

        dropdown = gr.Dropdown(
            label="Script", elem_id="script_list", choices=["None"] + self.titles, value="None", type="index"
        )
        self.inputs[0] = dropdown

        self.setup_ui_for_section(None, self.selectable_scripts)

        self.infotext_fields.append((dropdown, lambda x: gr.update(value=x.get("Script", "None"))))
        self.apply_on_before_component_callbacks()
        return self.inputs

    def run(self, p, *args):  # mirrors ScriptRunner.run (the selected, non-always-on script)
        script_index = args[0]
        if script_index == 0 or script_index is None:
            return None
        script = self.selectable_scripts[script_index - 1]
        if script is None:
            return None
        script_args = args[script.args_from : script.args_to]
        processed = script.run(p, *script_args)
        shared.total_tqdm.clear()
        return processed

    def _run_alwayson(self, hook: str, p, *pre_args, **kwargs) -> None:
        for script in self.alwayson_scripts:
            try:
                script_args = p.script_args[script.args_from : script.args_to]
                getattr(script, hook)(p, *pre_args, *script_args, **kwargs)
            except Exception:
                errors.report(f"Error running {hook}: {script.filename}", exc_info=True)

    def before_process(self, p) -> None:  # mirrors ScriptRunner.before_process
        self._run_alwayson("before_process", p)

    def process(self, p) -> None:  # mirrors ScriptRunner.process
        self._run_alwayson("process", p)

    def process_before_every_sampling(self, p, **kwargs) -> None:  # mirrors ScriptRunner.process_before_every_sampling
        self._run_alwayson("process_before_every_sampling", p, **kwargs)

    def before_process_batch(self, p, **kwargs) -> None:  # mirrors ScriptRunner.before_process_batch
        self._run_alwayson("before_process_batch", p, **kwargs)

    def after_extra_networks_activate(self, p, **kwargs) -> None:  # mirrors ScriptRunner.after_extra_networks_activate
        self._run_alwayson("after_extra_networks_activate", p, **kwargs)

    def process_batch(self, p, **kwargs) -> None:  # mirrors ScriptRunner.process_batch
        self._run_alwayson("process_batch", p, **kwargs)

    def postprocess(self, p, processed) -> None:  # mirrors ScriptRunner.postprocess
        self._run_alwayson("postprocess", p, processed)

    def postprocess_batch(self, p, images, **kwargs) -> None:  # mirrors ScriptRunner.postprocess_batch
        for script in self.alwayson_scripts:
            try:
                script_args = p.script_args[script.args_from : script.args_to]
                script.postprocess_batch(p, *script_args, images=images, **kwargs)
            except Exception:
                errors.report(f"Error running postprocess_batch: {script.filename}", exc_info=True)

    def postprocess_batch_list(self, p, pp: PostprocessBatchListArgs, **kwargs) -> None:
        self._run_alwayson("postprocess_batch_list", p, pp, **kwargs)  # mirrors ScriptRunner.postprocess_batch_list

    def post_sample(self, p, ps: PostSampleArgs) -> None:  # mirrors ScriptRunner.post_sample
        self._run_alwayson("post_sample", p, ps)

    def on_mask_blend(self, p, mba: MaskBlendArgs) -> None:  # mirrors ScriptRunner.on_mask_blend
        self._run_alwayson("on_mask_blend", p, mba)

    def postprocess_image(self, p, pp: PostprocessImageArgs) -> None:  # mirrors ScriptRunner.postprocess_image
        self._run_alwayson("postprocess_image", p, pp)

    def postprocess_maskoverlay(self, p, ppmo: PostProcessMaskOverlayArgs) -> None:
        self._run_alwayson("postprocess_maskoverlay", p, ppmo)  # mirrors ScriptRunner.postprocess_maskoverlay

    def postprocess_image_after_composite(self, p, pp: PostprocessImageArgs) -> None:
        self._run_alwayson("postprocess_image_after_composite", p, pp)  # mirrors the ScriptRunner method

    def before_hr(self, p) -> None:  # mirrors ScriptRunner.before_hr
        self._run_alwayson("before_hr", p)

    def setup_scrips(self, p, *, is_ui: bool = True) -> None:  # mirrors ScriptRunner.setup_scrips (sic)
        for script in self.alwayson_scripts:
            if not is_ui and script.setup_for_ui_only:
                continue
            try:
                script_args = p.script_args[script.args_from : script.args_to]
                script.setup(p, *script_args)
            except Exception:
                errors.report(f"Error running setup: {script.filename}", exc_info=True)

    def script(self, title: str):  # mirrors ScriptRunner.script
        return self.title_map.get(title.lower())

    def set_named_arg(self, args, script_type, arg_elem_id, value):  # mirrors ScriptRunner.set_named_arg
        script = next((x for x in self.scripts if type(x).__name__ == script_type), None)
        if script is None:
            return None
        for i, control in enumerate(script.controls):
            if arg_elem_id in control.elem_id:
                index = script.args_from + i
                if isinstance(args, list):
                    args[index] = value
                    return args
                elif isinstance(args, tuple):
                    return args[:index] + (value,) + args[index + 1 :]
                else:
                    return None
        return None


scripts_txt2img: ScriptRunner = ScriptRunner()
scripts_img2img: ScriptRunner = ScriptRunner()
scripts_current: ScriptRunner | None = None


def create_runners() -> None:
    """mirrors the end of scripts.load_scripts: fresh txt2img/img2img runners."""
    global scripts_txt2img, scripts_img2img
    scripts_txt2img = ScriptRunner()
    scripts_img2img = ScriptRunner()


def clear() -> None:
    """Stand-in entry: what scripts.load_scripts does before loading (clear scripts_data and all callbacks)."""
    scripts_data.clear()
    postprocessing_scripts_data.clear()
    script_callbacks.clear_callbacks()
