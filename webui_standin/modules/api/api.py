"""Stand-in for modules/api/api.py (v1.10.1): the script-argument handling of /sdapi/v1/txt2img, /img2img and
/script-info, as plain functions on an ``Api`` object (no FastAPI app; errors are fastapi.HTTPException).

Modelled facts: a job's script args start from defaults taken from a second set of every script's UI components;
values named by the request's ``infotext`` come next (request fields that were not sent, script components, and
override settings), then the selectable script's ``script_args`` (with the dropdown index), then each
``alwayson_scripts[title]["args"]`` laid over that script's slice from its start.
"""

from __future__ import annotations

from contextlib import closing
from typing import Any

import gradio as gr
import modules.shared as shared
from fastapi.exceptions import HTTPException
from modules import infotext_utils, scripts, sd_samplers
from modules.api import models
from modules.processing import StableDiffusionProcessingImg2Img, StableDiffusionProcessingTxt2Img, process_images

# request fields that are not processing arguments
_NOT_PROCESSING_ARGS = ("script_name", "script_args", "alwayson_scripts", "infotext", "include_init_images")
_FORK_ONLY_ARGS = {"hr_cfg", "hr_cfg_scale"}  # left to the fork flavour's defaults when a request omits them


def script_name_to_index(name: str, scripts_list: list) -> int:
    """Models api.script_name_to_index: the position of the script with that title (case-insensitive); HTTP 422
    when there is none."""
    wanted = name.lower()
    for position, script in enumerate(scripts_list):
        if script.title().lower() == wanted:
            return position
    raise HTTPException(status_code=422, detail=f"Script '{name}' not found")


def validate_sampler_name(name: str) -> str:
    """Models api.validate_sampler_name: HTTP 404 for a name that is not a sampler (or alias)."""
    if sd_samplers.all_samplers_map.get(name) is None:
        raise HTTPException(status_code=404, detail="Sampler not found")
    return name


def _default_args(runner) -> list:
    """Models Api.init_default_script_args: a list as long as the runner's inputs (item 0, the Script dropdown, is
    0); each script's slice holds the values of the components of a fresh ui() call, made inside a throwaway
    gr.Blocks.  (Like v1.10.1, ui() is called twice per script: once to see that it builds anything.)"""
    size = max([1, *(s.args_to for s in runner.scripts)])
    defaults: list = [0] + [None] * (size - 1)
    with gr.Blocks():
        for script in runner.scripts:
            if not script.ui(script.is_img2img):
                continue
            defaults[script.args_from : script.args_to] = [c.value for c in script.ui(script.is_img2img)]
    return defaults


def _type_for(field, request) -> type:
    """The type an infotext value is converted to: the request field's type for fields with an API name known to
    the request model, else the type of the component's current value."""
    known = request.__fields__
    return known[field.api].type_ if field.api in known else type(field.component.value)


class Api:
    """Models api.Api (the parts that map request fields onto scripts)."""

    def __init__(self) -> None:
        self.default_script_arg_txt2img: list = []
        self.default_script_arg_img2img: list = []
        for is_img2img, runner in ((False, scripts.scripts_txt2img), (True, scripts.scripts_img2img)):
            if not runner.scripts:
                runner.initialize_scripts(is_img2img)
            attribute = "default_script_arg_img2img" if is_img2img else "default_script_arg_txt2img"
            if not getattr(self, attribute):
                setattr(self, attribute, self.init_default_script_args(runner))

    def init_default_script_args(self, script_runner) -> list:
        """Models Api.init_default_script_args (see _default_args)."""
        return _default_args(script_runner)

    # --- finding scripts -------------------------------------------------------------------------------------------

    def get_selectable_script(self, script_name, script_runner):
        """Models Api.get_selectable_script: (script, index among the selectable ones), or (None, None) without a
        name."""
        if not script_name:
            return None, None
        index = script_name_to_index(script_name, script_runner.selectable_scripts)
        return script_runner.selectable_scripts[index], index

    def get_script(self, script_name, script_runner):
        """Models Api.get_script: any script of the runner by title; (None, None) without a name."""
        if not script_name:
            return None, None
        return script_runner.scripts[script_name_to_index(script_name, script_runner.scripts)]

    def get_scripts_list(self) -> dict[str, list[str]]:
        """Models Api.get_scripts_list (GET /sdapi/v1/scripts): the names of the scripts that built a UI."""
        runners = {"txt2img": scripts.scripts_txt2img, "img2img": scripts.scripts_img2img}
        return {tab: [s.name for s in runner.scripts if s.name is not None] for tab, runner in runners.items()}

    def get_script_info(self) -> list[models.ScriptInfo]:
        """Models Api.get_script_info (GET /sdapi/v1/script-info): the api_info of txt2img's, then img2img's scripts."""
        every = [*scripts.scripts_txt2img.scripts, *scripts.scripts_img2img.scripts]
        return [s.api_info for s in every if s.api_info is not None]

    # --- script args -----------------------------------------------------------------------------------------------

    def init_script_args(
        self, request, default_script_args, selectable_scripts, selectable_idx, script_runner, *, input_script_args=None
    ) -> list:
        """Models Api.init_script_args: defaults, then infotext-derived args, then the selectable script's args,
        then alwayson_scripts {title: {"args": [...]}} mapped positionally from script.args_from (title is
        case-insensitive; an unknown title -> HTTP 422, a selectable script there too; extra args are ignored;
        missing args keep defaults)."""
        args = list(default_script_args)
        for index, value in (input_script_args or {}).items():
            args[index] = value

        if selectable_scripts:
            args[selectable_scripts.args_from : selectable_scripts.args_to] = request.script_args
            args[0] = selectable_idx + 1

        for title, entry in (request.alwayson_scripts or {}).items():
            script = self.get_script(title, script_runner)
            if script is None:
                raise HTTPException(status_code=422, detail=f"always on script {title} not found")
            if script.alwayson is False:
                raise HTTPException(
                    status_code=422, detail="Cannot have a selectable script in the always on scripts params"
                )
            if "args" not in entry:
                continue
            usable = list(entry["args"])[: script.args_to - script.args_from]
            args[script.args_from : script.args_from + len(usable)] = usable
        return args

    def apply_infotext(self, request, tabname: str, *, script_runner=None, mentioned_script_args=None) -> dict:
        """Models Api.apply_infotext: fills unset request fields from the infotext (PasteFields with `api`) and,
        for script components, puts converted values into mentioned_script_args {index: value}. Conversion is
        target_type(value) with target_type = type(component.value) - so 'False' becomes True for a bool. Settings
        the infotext names go into override_settings unless the request sets them."""
        if not request.infotext:
            return {}

        fields = infotext_utils.paste_fields[tabname]["fields"]
        sent = request.dict(exclude_unset=True)
        params = infotext_utils.parse_generation_parameters(request.infotext)

        def converted(field):
            raw = field.function(params) if field.function else params.get(field.label)
            if raw is None:
                return None
            wanted = _type_for(field, request)
            if wanted is type(None):
                return None
            if isinstance(raw, dict) and raw.get("__type__") == "generic_update":
                raw = raw.get("value")
            return raw if raw is None or isinstance(raw, wanted) else wanted(raw)

        for field in fields:
            if field.api and field.api not in sent:
                value = converted(field)
                if value is not None:
                    setattr(request, field.api, value)

        if request.override_settings is None:
            request.override_settings = {}
        for _key, setting, value in infotext_utils.get_override_settings(params):
            request.override_settings.setdefault(setting, value)

        if script_runner is not None and mentioned_script_args is not None:
            position = {component: i for i, component in enumerate(script_runner.inputs)}
            for field in fields:
                if field.component not in position:
                    continue
                value = converted(field)
                if value is not None:
                    mentioned_script_args[position[field.component]] = value

        return params

    # --- running ---------------------------------------------------------------------------------------------------

    def _processing_kwargs(self, req) -> dict:
        """The processing arguments of a request: sampler/scheduler resolved (an unknown sampler -> HTTP 404), no
        saving, and the fields that are not processing arguments left out."""
        sampler, scheduler = sd_samplers.get_sampler_and_scheduler(req.sampler_name or req.sampler_index, req.scheduler)
        update = {"sampler_name": validate_sampler_name(sampler), "do_not_save_samples": True, "do_not_save_grid": True}
        populated = req.copy(update=update)
        if populated.sampler_name:
            populated.sampler_index = None
        if not populated.scheduler and scheduler != "Automatic":
            populated.scheduler = scheduler
        return {
            k: v
            for k, v in vars(populated).items()
            if k not in _NOT_PROCESSING_ARGS and not (k in _FORK_ONLY_ARGS and v is None)
        }

    def _run(self, req, is_img2img: bool) -> dict[str, Any]:
        tabname = "img2img" if is_img2img else "txt2img"
        runner = getattr(scripts, f"scripts_{tabname}")
        defaults = getattr(self, f"default_script_arg_{tabname}")

        if is_img2img and req.init_images is None:
            raise HTTPException(status_code=404, detail="Init image not found")

        from_infotext: dict = {}
        self.apply_infotext(req, tabname, script_runner=runner, mentioned_script_args=from_infotext)
        selected, selected_index = self.get_selectable_script(req.script_name, runner)
        kwargs = self._processing_kwargs(req)
        script_args = self.init_script_args(
            req, defaults, selected, selected_index, runner, input_script_args=from_infotext
        )
        send_images = kwargs.pop("send_images", True)
        kwargs.pop("save_images", None)
        init_images = kwargs.pop("init_images", None)

        processing_class = StableDiffusionProcessingImg2Img if is_img2img else StableDiffusionProcessingTxt2Img
        with closing(processing_class(sd_model=shared.sd_model, **kwargs)) as p:
            if is_img2img:
                p.init_images = list(init_images)
            p.is_api, p.scripts = True, runner
            shared.state.begin(job=f"scripts_{tabname}")
            try:
                if selected is None:
                    p.script_args = tuple(script_args)
                    processed = process_images(p)
                else:
                    p.script_args = script_args
                    processed = runner.run(p, *p.script_args)
            finally:
                shared.state.end()
                shared.total_tqdm.clear()

        return {
            "images": list(processed.images) if send_images else [],
            "parameters": vars(req),
            "info": processed.js(),
            "processed": processed,
            "p": p,
            "script_args": script_args,
        }

    def text2imgapi(self, txt2imgreq) -> dict[str, Any]:
        """Models Api.text2imgapi; accepts a dict or models.StableDiffusionTxt2ImgProcessingAPI. Returns
        {"images", "parameters", "info"} plus (stand-in) "processed", "p" and "script_args"."""
        if isinstance(txt2imgreq, dict):
            txt2imgreq = models.StableDiffusionTxt2ImgProcessingAPI(**txt2imgreq)
        return self._run(txt2imgreq, False)

    def img2imgapi(self, img2imgreq) -> dict[str, Any]:
        """Models Api.img2imgapi (init_images: tensors / PIL images instead of base64)."""
        if isinstance(img2imgreq, dict):
            img2imgreq = models.StableDiffusionImg2ImgProcessingAPI(**img2imgreq)
        return self._run(img2imgreq, True)
