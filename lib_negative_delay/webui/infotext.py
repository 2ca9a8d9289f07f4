"""Reading the extension's infotext back (paste, PNG info "Send to", API ``infotext``) and tab-to-tab "Send to".

Keys: ``Negative delay: N`` (or ``auto``), and with auto mode ``Negative delay auto: sensitivity S steps A-B
fallback N`` plus ``Negative delay steps: 3 4 3`` (the step each image of the batch switched at).
"""

from __future__ import annotations

import re

from lib_negative_delay import INFOTEXT_KEY
from lib_negative_delay.settings import parse_delay, parse_sensitivity

AUTO_KEY = f"{INFOTEXT_KEY} auto"
_AUTO_RE = re.compile(r"sensitivity\s+(?P<s>\S+)\s+steps\s+(?P<a>\d+)-(?P<b>\d+)\s+fallback\s+(?P<f>\d+)")


def _is_auto(params: dict) -> bool:
    return str(params.get(INFOTEXT_KEY, "")).strip().lower() == "auto"


def _auto_field(params: dict, name: str) -> str | None:
    match = _AUTO_RE.search(str(params.get(AUTO_KEY, "")))
    return match.group(name) if match else None


def pasted_delay(params: dict) -> int | None:
    """Delay to restore; None leaves the slider as it is (absent or malformed key)."""
    if INFOTEXT_KEY not in params:
        return None
    if _is_auto(params):
        fallback = _auto_field(params, "f")
        return None if fallback is None else parse_delay(fallback, f"pasted infotext '{AUTO_KEY}'")
    return parse_delay(params[INFOTEXT_KEY], f"pasted infotext '{INFOTEXT_KEY}'")


def pasted_enabled(params: dict) -> bool:
    """Enabled exactly when the infotext carries a usable delay or ``auto`` (images made without it turn it off)."""
    return _is_auto(params) or pasted_delay(params) is not None


def pasted_auto(params: dict) -> bool | None:
    """Auto mode on for ``Negative delay: auto``, off for a number, unchanged when the key is absent."""
    if INFOTEXT_KEY not in params:
        return None
    return _is_auto(params)


def pasted_sensitivity(params: dict) -> float | None:
    value = _auto_field(params, "s") if _is_auto(params) else None
    return None if value is None else parse_sensitivity(value, f"pasted infotext '{AUTO_KEY}'")


def pasted_auto_min(params: dict) -> int | None:
    value = _auto_field(params, "a") if _is_auto(params) else None
    return None if value is None else parse_delay(value, f"pasted infotext '{AUTO_KEY}'")


def pasted_auto_max(params: dict) -> int | None:
    value = _auto_field(params, "b") if _is_auto(params) else None
    return None if value is None else parse_delay(value, f"pasted infotext '{AUTO_KEY}'")


READERS = (pasted_enabled, pasted_delay, pasted_auto, pasted_sensitivity, pasted_auto_min, pasted_auto_max)
"""One reader per panel component, in ``ui.build`` order."""


def infotext_fields(components: list) -> list[tuple[object, object]]:
    """The ``Script.infotext_fields`` pairs for the panel's components (in ``ui.build`` order)."""
    return list(zip(components, READERS, strict=True))


def paste_field_names() -> list:
    """The ``Script.paste_field_names``: the readers themselves, not infotext keys.

    "Send to img2img/inpaint" under txt2img's gallery copies each txt2img field whose infotext target is ``in`` this
    list (plus the WebUI's Prompt, Steps, Seed ...) to the img2img field with a matching target, paired by position.
    Our targets are these module-level functions, the same objects in both tabs, and ``in`` compares by ``==``
    (identity for functions), so all six components travel; a key string would match no field at all.
    """
    return list(READERS)
