"""Stand-in for modules/infotext_utils.py (v1.10.1; old name modules/generation_parameters_copypaste.py)."""

from __future__ import annotations

import json
import re
import sys
from typing import Any

import gradio as gr
from modules import script_callbacks, shared

sys.modules["modules.generation_parameters_copypaste"] = sys.modules[__name__]  # alias for old name

re_param_code = r'\s*(\w[\w \-/]+):\s*("(?:\\.|[^\\"])+"|[^,]*)(?:,|$)'
re_param = re.compile(re_param_code)
re_imagesize = re.compile(r"^(\d+)x(\d+)$")
type_of_gr_update = type(gr.update())


class PasteField(tuple):
    """mirrors infotext_utils.PasteField: (component, target) where target is an infotext key or a callable(params);
    `api` names the request field it fills in API calls."""

    def __new__(cls, component, target, *, api=None):
        return super().__new__(cls, (component, target))

    def __init__(self, component, target, *, api=None) -> None:
        super().__init__()
        self.api = api
        self.component = component
        self.label = target if isinstance(target, str) else None
        self.function = target if callable(target) else None


class ParamBinding:
    """mirrors infotext_utils.ParamBinding: one "Send to <tabname>" (or paste) button. `source_tabname` is set only for
    the buttons under txt2img's gallery; `paste_field_names` is the source tab's ScriptRunner.paste_field_names."""

    def __init__(
        self,
        paste_button,
        tabname: str,
        source_text_component=None,
        source_image_component=None,
        source_tabname: str | None = None,
        override_settings_component=None,
        paste_field_names: list | None = None,
    ) -> None:
        self.paste_button = paste_button
        self.tabname = tabname
        self.source_text_component = source_text_component
        self.source_image_component = source_image_component
        self.source_tabname = source_tabname
        self.override_settings_component = override_settings_component
        self.paste_field_names = paste_field_names or []


paste_fields: dict[str, dict] = {}
"""mirrors infotext_utils.paste_fields: tabname -> {"init_img", "fields", "override_settings_component"}"""
registered_param_bindings: list[ParamBinding] = []
"""mirrors infotext_utils.registered_param_bindings"""

SENT_FIELD_NAMES = ["Prompt", "Negative prompt", "Steps", "Face restoration"]
"""the targets every tab-to-tab "Send to" carries (connect_paste_params_buttons), plus "Seed" when opts.send_seed"""


def reset() -> None:  # mirrors infotext_utils.reset
    paste_fields.clear()
    registered_param_bindings.clear()


def register_paste_params_button(binding: ParamBinding) -> None:  # mirrors infotext_utils.register_paste_params_button
    registered_param_bindings.append(binding)


def quote(text: Any) -> Any:
    """mirrors infotext_utils.quote: JSON-quotes values containing ',', newline or ':'."""
    if "," not in str(text) and "\n" not in str(text) and ":" not in str(text):
        return text
    return json.dumps(text, ensure_ascii=False)


def unquote(text: str) -> str:  # mirrors infotext_utils.unquote
    if len(text) == 0 or text[0] != '"' or text[-1] != '"':
        return text
    try:
        return json.loads(text)
    except Exception:
        return text


def add_paste_fields(tabname: str, init_img, fields, override_settings_component=None) -> None:
    """mirrors infotext_utils.add_paste_fields"""
    if fields:
        for i in range(len(fields)):
            if not isinstance(fields[i], PasteField):
                fields[i] = PasteField(*fields[i])
    paste_fields[tabname] = {
        "init_img": init_img,
        "fields": fields,
        "override_settings_component": override_settings_component,
    }


def sent_fields(binding: ParamBinding) -> tuple[list, list]:
    """mirrors the tab-to-tab part of connect_paste_params_buttons: the (source, destination) components a "Send to"
    button copies, paired by position. A field travels when its target (the second item of the tab's paste field) is
    `in` the built-in names + "Seed" (opts.send_seed) + binding.paste_field_names: `in` compares with ==, so a
    callable target matches only the very same callable. The real button's handler is the identity function, so both
    lists must line up; the WebUI does not check that (gradio fails at click time), the stand-in raises at once."""
    if binding.source_tabname is None or paste_fields[binding.tabname]["fields"] is None:
        return [], []
    names = SENT_FIELD_NAMES + (["Seed"] if shared.opts.send_seed else []) + binding.paste_field_names
    sources = [component for component, target in paste_fields[binding.source_tabname]["fields"] if target in names]
    destinations = [component for component, target in paste_fields[binding.tabname]["fields"] if target in names]
    if len(sources) != len(destinations):
        raise ValueError(f"Send to {binding.tabname}: {len(sources)} sources, {len(destinations)} destinations")
    return sources, destinations


def send_values(binding: ParamBinding, source_values: dict | None = None) -> dict[Any, Any]:
    """Stand-in helper: what pressing the binding's button copies, {destination component: value}. `source_values`
    holds the source tab's components as the user left them ({component: value}); others have their `.value`."""
    source_values = source_values or {}
    sources, destinations = sent_fields(binding)
    pairs = zip(sources, destinations, strict=True)
    return {dst: source_values.get(src, getattr(src, "value", None)) for src, dst in pairs}


def parse_generation_parameters(x: str, skip_fields: list[str] | None = None) -> dict[str, Any]:
    """mirrors infotext_utils.parse_generation_parameters: prompt lines, 'Negative prompt:' lines, and a last line of
    `Key: value` pairs (values may be JSON-quoted; 'WxH' values split into Key-1/Key-2), plus the defaults the
    WebUI adds for missing keys. All parsed values are strings."""
    if skip_fields is None:
        skip_fields = shared.opts.infotext_skip_pasting

    res: dict[str, Any] = {}
    prompt = ""
    negative_prompt = ""
    done_with_prompt = False

    *lines, lastline = x.strip().split("\n")
    if len(re_param.findall(lastline)) < 3:
        lines.append(lastline)
        lastline = ""

    for line in lines:
        line = line.strip()
        if line.startswith("Negative prompt:"):
            done_with_prompt = True
            line = line[16:].strip()
        if done_with_prompt:
            negative_prompt += ("" if negative_prompt == "" else "\n") + line
        else:
            prompt += ("" if prompt == "" else "\n") + line

    res["Prompt"] = prompt
    res["Negative prompt"] = negative_prompt

    for k, v in re_param.findall(lastline):
        try:
            if v[0] == '"' and v[-1] == '"':
                v = unquote(v)
            m = re_imagesize.match(v)
            if m is not None:
                res[f"{k}-1"] = m.group(1)
                res[f"{k}-2"] = m.group(2)
            else:
                res[k] = v
        except Exception:
            print(f'Error parsing "{k}: {v}"')

    if "Clip skip" not in res:
        res["Clip skip"] = "1"
    if "Hires resize-1" not in res:
        res["Hires resize-1"] = 0
        res["Hires resize-2"] = 0
    if "Hires sampler" not in res:
        res["Hires sampler"] = "Use same sampler"
    if "Hires schedule type" not in res:
        res["Hires schedule type"] = "Use same scheduler"
    if "Hires checkpoint" not in res:
        res["Hires checkpoint"] = "Use same checkpoint"
    if "Hires prompt" not in res:
        res["Hires prompt"] = ""
    if "Hires negative prompt" not in res:
        res["Hires negative prompt"] = ""
    if "Mask mode" not in res:
        res["Mask mode"] = "Inpaint masked"
    if "Masked content" not in res:
        res["Masked content"] = "original"
    if "Inpaint area" not in res:
        res["Inpaint area"] = "Whole picture"
    if "Masked area padding" not in res:
        res["Masked area padding"] = 32
    if "RNG" not in res:
        res["RNG"] = "GPU"
    if "Schedule type" not in res:
        res["Schedule type"] = "Automatic"
    if "Schedule max sigma" not in res:
        res["Schedule max sigma"] = 0
    if "Schedule min sigma" not in res:
        res["Schedule min sigma"] = 0
    if "Schedule rho" not in res:
        res["Schedule rho"] = 0
    if "VAE Encoder" not in res:
        res["VAE Encoder"] = "Full"
    if "VAE Decoder" not in res:
        res["VAE Decoder"] = "Full"
    if "FP8 weight" not in res:
        res["FP8 weight"] = "Disable"
    if "Cache FP16 weight for LoRA" not in res and res["FP8 weight"] != "Disable":
        res["Cache FP16 weight for LoRA"] = False

    skip = set(skip_fields)
    res = {k: v for k, v in res.items() if k not in skip}
    return res


def get_override_settings(params: dict, *, skip_fields=None) -> list[tuple[str, str, Any]]:
    """mirrors infotext_utils.get_override_settings: (infotext key, setting name, value) for settings whose
    OptionInfo has an `infotext` name present in params with a value different from the current one."""
    res = []
    mapping = [(info.infotext, k) for k, info in shared.opts.data_labels.items() if info.infotext]
    for param_name, setting_name in mapping:
        if param_name in (skip_fields or {}):
            continue
        v = params.get(param_name, None)
        if v is None:
            continue
        if setting_name == "sd_model_checkpoint" and shared.opts.disable_weights_auto_swap:
            continue
        v = shared.opts.cast_value(setting_name, v)
        current_value = getattr(shared.opts, setting_name, None)
        if v == current_value:
            continue
        res.append((param_name, setting_name, v))
    return res


def create_override_settings_dict(text_pairs: list[str]) -> dict[str, Any]:  # mirrors create_override_settings_dict
    res = {}
    params = {}
    for pair in text_pairs:
        k, v = pair.split(":", maxsplit=1)
        params[k] = v.strip()
    mapping = [(info.infotext, k) for k, info in shared.opts.data_labels.items() if info.infotext]
    for param_name, setting_name in mapping:
        value = params.get(param_name, None)
        if value is None:
            continue
        res[setting_name] = shared.opts.cast_value(setting_name, value)
    return res


def paste_func(fields: list, prompt: str) -> list:
    """mirrors the inner paste_func of infotext_utils.connect_paste (the 'paste infotext' / 'Send to' path): parses
    the text, runs on_infotext_pasted callbacks, then for each (component, key-or-callable) returns a gr.update():
    empty (component unchanged) when the key is missing or conversion fails; otherwise the value converted to the
    type of the component's current value ('False' -> False for bools; ints go through float())."""
    params = parse_generation_parameters(prompt)
    script_callbacks.infotext_pasted_callback(prompt, params)
    res = []
    for output, key in fields:
        if callable(key):
            v = key(params)
        else:
            v = params.get(key, None)

        if v is None:
            res.append(gr.update())
        elif isinstance(v, type_of_gr_update):
            res.append(v)
        else:
            try:
                valtype = type(output.value)
                if valtype is bool and v == "False":
                    val = False
                elif valtype is int:
                    val = float(v)
                else:
                    val = valtype(v)
                res.append(gr.update(value=val))
            except Exception:
                res.append(gr.update())
    return res


def paste_values(fields: list, prompt: str) -> dict[Any, Any]:
    """Stand-in helper over paste_func: {component: new value} for the components the paste would change."""
    out: dict[Any, Any] = {}
    for (component, _key), upd in zip(fields, paste_func(fields, prompt), strict=True):
        if isinstance(upd, dict) and "value" in upd:
            out[component] = upd["value"]
    return out
