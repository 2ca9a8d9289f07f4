"""Stand-in for modules/infotext_utils.py (v1.10.1; old name modules/generation_parameters_copypaste.py).

Models the WebUI's infotext round trip: the paste-field registry of each tab, the "Send to" buttons, parsing an
infotext back into ``{key: text}`` (with the defaults v1.10.1 assumes for keys an older image lacks), override
settings, and the paste handler that turns parsed values into gradio updates.
"""

from __future__ import annotations

import json
import re
import sys
from dataclasses import dataclass, field
from typing import Any

import gradio as gr
from modules import script_callbacks, shared

sys.modules["modules.generation_parameters_copypaste"] = sys.modules[__name__]  # alias for old name

# `Key: value,` pairs of the last infotext line; a value is either JSON-quoted or runs up to the next comma
re_param_code = r'\s*(\w[\w \-/]+):\s*("(?:\\.|[^\\"])+"|[^,]*)(?:,|$)'
re_param = re.compile(re_param_code)
re_imagesize = re.compile(r"^(\d+)x(\d+)$")
type_of_gr_update = type(gr.update())


class PasteField(tuple):
    """Models infotext_utils.PasteField: the pair (component, target); target is an infotext key or a function of
    the parsed params.  ``label``/``function`` tell which of the two it is; ``api`` names the API request field."""

    def __new__(cls, component, target, *, api=None):
        pair = tuple.__new__(cls, (component, target))
        pair.component, pair.api = component, api
        pair.label = target if isinstance(target, str) else None
        pair.function = target if callable(target) else None
        return pair


@dataclass(eq=False)
class ParamBinding:
    """Models infotext_utils.ParamBinding: one "Send to <tabname>" (or paste) button.  ``source_tabname`` is set only
    for the buttons under a tab's gallery; ``paste_field_names`` is the source tab's ScriptRunner.paste_field_names."""

    paste_button: Any
    tabname: str
    source_text_component: Any = None
    source_image_component: Any = None
    source_tabname: str | None = None
    override_settings_component: Any = None
    paste_field_names: list | None = field(default=None)

    def __post_init__(self) -> None:
        self.paste_field_names = list(self.paste_field_names or [])


paste_fields: dict[str, dict] = {}
"""Models infotext_utils.paste_fields: tabname -> {"init_img", "fields", "override_settings_component"}"""
registered_param_bindings: list[ParamBinding] = []
"""Models infotext_utils.registered_param_bindings"""

SENT_FIELD_NAMES = ["Prompt", "Negative prompt", "Steps", "Face restoration"]
"""the targets every tab-to-tab "Send to" carries (connect_paste_params_buttons), plus "Seed" when opts.send_seed"""


def reset() -> None:
    """Models infotext_utils.reset: forget all tabs and buttons."""
    for registry in (paste_fields, registered_param_bindings):
        registry.clear()


def register_paste_params_button(binding: ParamBinding) -> None:
    """Models infotext_utils.register_paste_params_button."""
    registered_param_bindings.append(binding)


def quote(text: Any) -> Any:
    """Models infotext_utils.quote: a value holding a comma, colon or newline is written as a JSON string."""
    as_text = str(text)
    if any(ch in as_text for ch in ",:\n"):
        return json.dumps(text, ensure_ascii=False)
    return text


def unquote(text: str) -> str:
    """Models infotext_utils.unquote: undoes quote() for a "..." value; anything else (or bad JSON) is kept."""
    if not (text.startswith('"') and text.endswith('"')):
        return text
    try:
        return json.loads(text)
    except Exception:
        return text


def add_paste_fields(tabname: str, init_img, fields, override_settings_component=None) -> None:
    """Models infotext_utils.add_paste_fields: registers a tab's paste fields, turning plain pairs into PasteFields
    in place."""
    for i, entry in enumerate(fields or []):
        if not isinstance(entry, PasteField):
            fields[i] = PasteField(*entry)
    paste_fields[tabname] = dict(
        init_img=init_img, fields=fields, override_settings_component=override_settings_component
    )


def sent_fields(binding: ParamBinding) -> tuple[list, list]:
    """Models the tab-to-tab part of connect_paste_params_buttons: the (source, destination) components a "Send to"
    button copies, paired by position. A field travels when its target (the second item of the tab's paste field) is
    `in` the built-in names + "Seed" (opts.send_seed) + binding.paste_field_names: `in` compares with ==, so a
    callable target matches only the very same callable. The real button's handler is the identity function, so both
    lists must line up; the WebUI does not check that (gradio fails at click time), the stand-in raises at once."""
    if binding.source_tabname is None or paste_fields[binding.tabname]["fields"] is None:
        return [], []
    names = SENT_FIELD_NAMES + (["Seed"] if shared.opts.send_seed else []) + binding.paste_field_names

    def travelling(tab: str) -> list:
        return [component for component, target in paste_fields[tab]["fields"] if target in names]

    sources, destinations = travelling(binding.source_tabname), travelling(binding.tabname)
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


# Keys v1.10.1 fills in when an infotext lacks them (infotexts of older versions), as (key looked for, entries added).
_MISSING_KEY_DEFAULTS: tuple[tuple[str, dict[str, Any]], ...] = (
    ("Clip skip", {"Clip skip": "1"}),
    ("Hires resize-1", {"Hires resize-1": 0, "Hires resize-2": 0}),
    ("Hires sampler", {"Hires sampler": "Use same sampler"}),
    ("Hires schedule type", {"Hires schedule type": "Use same scheduler"}),
    ("Hires checkpoint", {"Hires checkpoint": "Use same checkpoint"}),
    ("Hires prompt", {"Hires prompt": ""}),
    ("Hires negative prompt", {"Hires negative prompt": ""}),
    ("Mask mode", {"Mask mode": "Inpaint masked"}),
    ("Masked content", {"Masked content": "original"}),
    ("Inpaint area", {"Inpaint area": "Whole picture"}),
    ("Masked area padding", {"Masked area padding": 32}),
    ("RNG", {"RNG": "GPU"}),
    ("Schedule type", {"Schedule type": "Automatic"}),
    ("Schedule max sigma", {"Schedule max sigma": 0}),
    ("Schedule min sigma", {"Schedule min sigma": 0}),
    ("Schedule rho", {"Schedule rho": 0}),
    ("VAE Encoder", {"VAE Encoder": "Full"}),
    ("VAE Decoder", {"VAE Decoder": "Full"}),
    ("FP8 weight", {"FP8 weight": "Disable"}),
)


def _split_prompts(lines: list[str]) -> tuple[str, str]:
    """The prompt and negative prompt of an infotext's text lines: everything from the first line that starts with
    "Negative prompt:" on is the negative prompt (that prefix is removed from every line that has it); lines are
    stripped and joined with newlines, leading empty lines dropped."""
    marker = "Negative prompt:"
    stripped = [line.strip() for line in lines]
    cut = next((i for i, line in enumerate(stripped) if line.startswith(marker)), len(stripped))
    positive = stripped[:cut]
    negative = [line[len(marker) :].strip() if line.startswith(marker) else line for line in stripped[cut:]]

    def join(part: list[str]) -> str:
        while part and part[0] == "":
            part = part[1:]
        return "\n".join(part)

    return join(positive), join(negative)


def parse_generation_parameters(x: str, skip_fields: list[str] | None = None) -> dict[str, Any]:
    """Models infotext_utils.parse_generation_parameters: prompt lines, 'Negative prompt:' lines, and a last line of
    `Key: value` pairs (taken as such only when it holds at least three; values may be JSON-quoted; 'WxH' values
    split into Key-1/Key-2), plus the defaults the WebUI adds for missing keys, minus ``skip_fields`` (default:
    opts.infotext_skip_pasting). All parsed values are strings."""
    if skip_fields is None:
        skip_fields = shared.opts.infotext_skip_pasting

    lines = x.strip().split("\n")
    pairs = re_param.findall(lines[-1])
    if len(pairs) < 3:
        pairs = []
    else:
        lines = lines[:-1]
    prompt, negative_prompt = _split_prompts(lines)
    res: dict[str, Any] = {"Prompt": prompt, "Negative prompt": negative_prompt}

    for key, raw in pairs:
        if not raw:  # v1.10.1's loop fails on an empty value and leaves the key out
            print(f'Error parsing "{key}: {raw}"')
            continue
        value = unquote(raw) if raw[:1] == '"' and raw[-1:] == '"' else raw
        size = re_imagesize.match(value)
        if size is None:
            res[key] = value
        else:
            res[key + "-1"], res[key + "-2"] = size.groups()

    for looked_for, entries in _MISSING_KEY_DEFAULTS:
        if looked_for not in res:
            res.update(entries)
    if res["FP8 weight"] != "Disable":
        res.setdefault("Cache FP16 weight for LoRA", False)

    return {key: value for key, value in res.items() if key not in set(skip_fields)}


def _settings_with_infotext_names() -> list[tuple[str, str]]:
    """(infotext key, setting name) of every registered option that declares an infotext name."""
    return [(info.infotext, name) for name, info in shared.opts.data_labels.items() if info.infotext]


def get_override_settings(params: dict, *, skip_fields=None) -> list[tuple[str, str, Any]]:
    """Models infotext_utils.get_override_settings: (infotext key, setting name, value) for settings whose
    OptionInfo has an `infotext` name present in params with a value different from the current one (the model
    checkpoint is left out while opts.disable_weights_auto_swap is on)."""
    skipped = skip_fields or {}
    found = []
    for key, setting in _settings_with_infotext_names():
        if key in skipped or params.get(key) is None:
            continue
        if setting == "sd_model_checkpoint" and shared.opts.disable_weights_auto_swap:
            continue
        value = shared.opts.cast_value(setting, params[key])
        if value != getattr(shared.opts, setting, None):
            found.append((key, setting, value))
    return found


def create_override_settings_dict(text_pairs: list[str]) -> dict[str, Any]:
    """Models infotext_utils.create_override_settings_dict: "Key: value" texts -> {setting name: typed value} for
    the keys that name a setting."""
    given = dict((k, v.strip()) for k, v in (pair.split(":", maxsplit=1) for pair in text_pairs))
    return {
        setting: shared.opts.cast_value(setting, given[key])
        for key, setting in _settings_with_infotext_names()
        if given.get(key) is not None
    }


def _as_type_of(component, value):
    """The conversion the paste handler applies: to the type of the component's current value, with the text
    'False' meaning False for booleans and int components going through float()."""
    kind = type(component.value)
    if kind is bool and value == "False":
        return False
    return float(value) if kind is int else kind(value)


def paste_func(fields: list, prompt: str) -> list:
    """Models the inner paste_func of infotext_utils.connect_paste (the 'paste infotext' / 'Send to' path): parses
    the text, runs on_infotext_pasted callbacks, then for each (component, key-or-callable) returns a gr.update():
    empty (component unchanged) when the key is missing or conversion fails; a gr.update a callable returned as is;
    otherwise the value converted to the type of the component's current value."""
    params = parse_generation_parameters(prompt)
    script_callbacks.infotext_pasted_callback(prompt, params)
    updates = []
    for component, target in fields:
        value = target(params) if callable(target) else params.get(target)
        if value is None or isinstance(value, type_of_gr_update):
            updates.append(gr.update() if value is None else value)
            continue
        try:
            updates.append(gr.update(value=_as_type_of(component, value)))
        except Exception:
            updates.append(gr.update())
    return updates


def paste_values(fields: list, prompt: str) -> dict[Any, Any]:
    """Stand-in helper over paste_func: {component: new value} for the components the paste would change."""
    out: dict[Any, Any] = {}
    for (component, _key), upd in zip(fields, paste_func(fields, prompt), strict=True):
        if isinstance(upd, dict) and "value" in upd:
            out[component] = upd["value"]
    return out
