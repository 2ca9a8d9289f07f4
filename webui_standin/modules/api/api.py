"""Stand-in for modules/api/api.py (v1.10.1): the script-argument handling of /sdapi/v1/txt2img, /img2img and
/script-info, as plain functions on an ``Api`` object (no FastAPI app; errors are fastapi.HTTPException)."""

from __future__ import annotations

from contextlib import closing
from typing import Any

import gradio as gr
import modules.shared as shared
from fastapi.exceptions import HTTPException
from modules import infotext_utils, scripts, sd_samplers
from modules.api import models
from modules.processing import StableDiffusionProcessingImg2Img, StableDiffusionProcessingTxt2Img, process_images


def script_name_to_index(name: str, scripts_list: list) -> int:  # mirrors api.script_name_to_index
    try:
        return [script.title().lower() for script in scripts_list].index(name.lower())
    except Exception as e:
        raise HTTPException(status_code=422, detail=f"Script '{name}' not found") from e


def validate_sampler_name(name: str) -> str:  # mirrors api.validate_sampler_name
    config = sd_samplers.all_samplers_map.get(name, None)
    if config is None:
        raise HTTPException(status_code=404, detail="Sampler not found")
    return name


class Api:
    """mirrors api.Api (the parts that map request fields onto scripts)."""

    def __init__(self) -> None:
        self.default_script_arg_txt2img: list = []
        self.default_script_arg_img2img: list = []
        txt2img_script_runner = scripts.scripts_txt2img
        img2img_script_runner = scripts.scripts_img2img
        if not txt2img_script_runner.scripts:
            txt2img_script_runner.initialize_scripts(False)
        if not self.default_script_arg_txt2img:
            self.default_script_arg_txt2img = self.init_default_script_args(txt2img_script_runner)
        if not img2img_script_runner.scripts:
            img2img_script_runner.initialize_scripts(True)
        if not self.default_script_arg_img2img:
            self.default_script_arg_img2img = self.init_default_script_args(img2img_script_runner)

    def get_selectable_script(self, script_name, script_runner):  # mirrors Api.get_selectable_script
        if script_name is None or script_name == "":
            return None, None
        script_idx = script_name_to_index(script_name, script_runner.selectable_scripts)
        script = script_runner.selectable_scripts[script_idx]
        return script, script_idx

    def get_scripts_list(self) -> dict[str, list[str]]:  # mirrors Api.get_scripts_list
        t2ilist = [script.name for script in scripts.scripts_txt2img.scripts if script.name is not None]
        i2ilist = [script.name for script in scripts.scripts_img2img.scripts if script.name is not None]
        return {"txt2img": t2ilist, "img2img": i2ilist}

    def get_script_info(self) -> list[models.ScriptInfo]:  # mirrors Api.get_script_info (GET /sdapi/v1/script-info)
        res = []
        for script_list in [scripts.scripts_txt2img.scripts, scripts.scripts_img2img.scripts]:
            res += [script.api_info for script in script_list if script.api_info is not None]
        return res

    def get_script(self, script_name, script_runner):  # mirrors Api.get_script
        if script_name is None or script_name == "":
            return None, None
        script_idx = script_name_to_index(script_name, script_runner.scripts)
        return script_runner.scripts[script_idx]

    def init_default_script_args(self, script_runner) -> list:
        """mirrors Api.init_default_script_args: calls every script's ui() again (twice) inside a throwaway
        gr.Blocks and takes the new components' values as defaults."""
        last_arg_index = 1
        for script in script_runner.scripts:
            if last_arg_index < script.args_to:
                last_arg_index = script.args_to
        script_args: list = [None] * last_arg_index
        script_args[0] = 0
        with gr.Blocks():
            for script in script_runner.scripts:
                if script.ui(script.is_img2img):
                    ui_default_values = []
                    for elem in script.ui(script.is_img2img):
                        ui_default_values.append(elem.value)
                    script_args[script.args_from : script.args_to] = ui_default_values
        return script_args

    def init_script_args(
        self, request, default_script_args, selectable_scripts, selectable_idx, script_runner, *, input_script_args=None
    ) -> list:
        """mirrors Api.init_script_args: defaults, then infotext-derived args, then the selectable script's args,
        then alwayson_scripts {title: {"args": [...]}} mapped positionally from script.args_from (title is
        case-insensitive; an unknown title -> HTTP 422; extra args are ignored; missing args keep defaults)."""
        script_args = default_script_args.copy()

        if input_script_args is not None:
            for index, value in input_script_args.items():
                script_args[index] = value

        if selectable_scripts:
            script_args[selectable_scripts.args_from : selectable_scripts.args_to] = request.script_args
            script_args[0] = selectable_idx + 1

        if request.alwayson_scripts:
            for alwayson_script_name in request.alwayson_scripts.keys():
                alwayson_script = self.get_script(alwayson_script_name, script_runner)
                if alwayson_script is None:
                    raise HTTPException(status_code=422, detail=f"always on script {alwayson_script_name} not found")
                if alwayson_script.alwayson is False:
                    raise HTTPException(
                        status_code=422, detail="Cannot have a selectable script in the always on scripts params"
                    )
                if "args" in request.alwayson_scripts[alwayson_script_name]:
                    n = min(
                        alwayson_script.args_to - alwayson_script.args_from,
                        len(request.alwayson_scripts[alwayson_script_name]["args"]),
                    )
                    for idx in range(0, n):
                        script_args[alwayson_script.args_from + idx] = request.alwayson_scripts[alwayson_script_name][
                            "args"
                        ][idx]
        return script_args

    def apply_infotext(self, request, tabname: str, *, script_runner=None, mentioned_script_args=None) -> dict:
        """mirrors Api.apply_infotext: fills unset request fields from the infotext (PasteFields with `api`) and,
        for script components, puts converted values into mentioned_script_args {index: value}. Conversion is
        target_type(value) with target_type = type(component.value) - so 'False' becomes True for a bool."""
        if not request.infotext:
            return {}

        possible_fields = infotext_utils.paste_fields[tabname]["fields"]
        set_fields = request.dict(exclude_unset=True)
        params = infotext_utils.parse_generation_parameters(request.infotext)

        def get_field_value(field, params):
            value = field.function(params) if field.function else params.get(field.label)
            if value is None:
                return None
            if field.api in request.__fields__:
                target_type = request.__fields__[field.api].type_
            else:
                target_type = type(field.component.value)
            if target_type is type(None):
                return None
            if isinstance(value, dict) and value.get("__type__") == "generic_update":
                value = value.get("value")
            if value is not None and not isinstance(value, target_type):
                value = target_type(value)
            return value

        for field in possible_fields:
            if not field.api:
                continue
            if field.api in set_fields:
                continue
            value = get_field_value(field, params)
            if value is not None:
                setattr(request, field.api, value)

        if request.override_settings is None:
            request.override_settings = {}

        overridden_settings = infotext_utils.get_override_settings(params)
        for _, setting_name, value in overridden_settings:
            if setting_name not in request.override_settings:
                request.override_settings[setting_name] = value

        if script_runner is not None and mentioned_script_args is not None:
            indexes = {v: i for i, v in enumerate(script_runner.inputs)}
            script_fields = (
                (field, indexes[field.component]) for field in possible_fields if field.component in indexes
            )
            for field, index in script_fields:
                value = get_field_value(field, params)
                if value is None:
                    continue
                mentioned_script_args[index] = value

        return params

    def _run(self, req, is_img2img: bool) -> dict[str, Any]:
        tabname = "img2img" if is_img2img else "txt2img"
        script_runner = scripts.scripts_img2img if is_img2img else scripts.scripts_txt2img
        default_args = self.default_script_arg_img2img if is_img2img else self.default_script_arg_txt2img

        if is_img2img and req.init_images is None:
            raise HTTPException(status_code=404, detail="Init image not found")

        infotext_script_args: dict = {}
        self.apply_infotext(req, tabname, script_runner=script_runner, mentioned_script_args=infotext_script_args)

        selectable_scripts, selectable_script_idx = self.get_selectable_script(req.script_name, script_runner)
        sampler, scheduler = sd_samplers.get_sampler_and_scheduler(req.sampler_name or req.sampler_index, req.scheduler)

        populate = req.copy(
            update={
                "sampler_name": validate_sampler_name(sampler),
                "do_not_save_samples": True,
                "do_not_save_grid": True,
            }
        )
        if populate.sampler_name:
            populate.sampler_index = None
        if not populate.scheduler and scheduler != "Automatic":
            populate.scheduler = scheduler

        args = dict(vars(populate))
        for k in ("script_name", "script_args", "alwayson_scripts", "infotext", "include_init_images"):
            args.pop(k, None)

        script_args = self.init_script_args(
            req,
            default_args,
            selectable_scripts,
            selectable_script_idx,
            script_runner,
            input_script_args=infotext_script_args,
        )

        send_images = args.pop("send_images", True)
        args.pop("save_images", None)

        cls = StableDiffusionProcessingImg2Img if is_img2img else StableDiffusionProcessingTxt2Img
        init_images = args.pop("init_images", None)
        with closing(cls(sd_model=shared.sd_model, **args)) as p:
            if is_img2img:
                p.init_images = list(init_images)
            p.is_api = True
            p.scripts = script_runner
            try:
                shared.state.begin(job=f"scripts_{tabname}")
                if selectable_scripts is not None:
                    p.script_args = script_args
                    processed = script_runner.run(p, *p.script_args)
                else:
                    p.script_args = tuple(script_args)
                    processed = process_images(p)
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
        """mirrors Api.text2imgapi; accepts a dict or models.StableDiffusionTxt2ImgProcessingAPI. Returns
        {"images", "parameters", "info"} plus (stand-in) "processed", "p" and "script_args"."""
        if isinstance(txt2imgreq, dict):
            txt2imgreq = models.StableDiffusionTxt2ImgProcessingAPI(**txt2imgreq)
        return self._run(txt2imgreq, False)

    def img2imgapi(self, img2imgreq) -> dict[str, Any]:
        """mirrors Api.img2imgapi (init_images: tensors / PIL images instead of base64)."""
        if isinstance(img2imgreq, dict):
            img2imgreq = models.StableDiffusionImg2ImgProcessingAPI(**img2imgreq)
        return self._run(img2imgreq, True)
