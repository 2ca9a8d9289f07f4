"""Reading the extension's infotext back (paste, PNG info "Send to", API ``infotext``) and tab-to-tab "Send to".

Keys: ``Negative delay: N`` (steps), ``Negative delay: P%`` (a share of *Sampling steps*) or ``auto``; with auto mode
``Negative delay auto: sensitivity S steps A-B fallback N`` (each of A, B, N may carry ``%``) plus
``Negative delay steps: 3 4 3`` (the step each image of the batch switched at).  Infotexts written before shares
existed carry plain numbers and paste exactly as before (unit ``steps``).
"""

from __future__ import annotations

import re

from lib_negative_delay import INFOTEXT_KEY
from lib_negative_delay.settings import (
    PERCENT_UNIT,
    STEPS_UNIT,
    Delay,
    parse_delay,
    parse_delay_value,
    parse_sensitivity,
    process_log,
)

AUTO_KEY = f"{INFOTEXT_KEY} auto"
_VALUE = r"\d+(?:\.\d+)?\s*%?"
_AUTO_RE = re.compile(
    rf"sensitivity\s+(?P<s>\S+)\s+steps\s+(?P<a>{_VALUE})\s*-\s*(?P<b>{_VALUE})\s+fallback\s+(?P<f>{_VALUE})"
)


def _is_auto(params: dict) -> bool:
    return str(params.get(INFOTEXT_KEY, "")).strip().lower() == "auto"


def _auto_field(params: dict, name: str) -> str | None:
    """One field of the auto key; None (warned once) when the key is there but unreadable: the panel then keeps its
    sensitivity and window, and the fixed delay stays as it is."""
    text = params.get(AUTO_KEY)
    match = _AUTO_RE.search(str(text or ""))
    if text is not None and match is None:
        process_log.warning(
            f"pasted infotext '{AUTO_KEY}: {text}' is unreadable (expected 'sensitivity S steps A-B fallback N'); "
            "auto-detect's settings are left as they are"
        )
    return match.group(name) if match else None


def _delay_text(params: dict) -> str | None:
    """The fixed delay as written (the fallback in auto mode); None when absent or unreadable."""
    if INFOTEXT_KEY not in params:
        return None
    return _auto_field(params, "f") if _is_auto(params) else str(params[INFOTEXT_KEY])


def _pasted(params: dict) -> Delay | None:
    text = _delay_text(params)
    key = AUTO_KEY if _is_auto(params) else INFOTEXT_KEY
    return None if text is None else parse_delay_value(text, f"pasted infotext '{key}'")


def _number(delay: Delay) -> int | float:
    """A slider value: whole numbers as int (the slider's type, which the API converts pasted values to)."""
    return int(delay.value) if float(delay.value).is_integer() else float(delay.value)


def pasted_delay(params: dict) -> int | float | None:
    """Delay to restore, in the pasted unit (``pasted_unit``); None leaves the slider as it is (absent or
    malformed key)."""
    delay = _pasted(params)
    return None if delay is None else _number(delay)


def pasted_unit(params: dict) -> str | None:
    """``%`` when the pasted delay is a share, ``steps`` when it is a step count, unchanged when absent/unreadable."""
    delay = _pasted(params)
    if delay is None:
        return None
    return PERCENT_UNIT if delay.percent else STEPS_UNIT


def pasted_enabled(params: dict) -> bool:
    """Enabled exactly when the infotext carries a usable delay or ``auto`` (images made without it turn it off)."""
    return _is_auto(params) or _pasted(params) is not None


def pasted_auto(params: dict) -> bool | None:
    """Auto mode on for ``Negative delay: auto``, off for a number, unchanged when the key is absent."""
    if INFOTEXT_KEY not in params:
        return None
    return _is_auto(params)


def pasted_sensitivity(params: dict) -> float | None:
    value = _auto_field(params, "s") if _is_auto(params) else None
    return None if value is None else parse_sensitivity(value, f"pasted infotext '{AUTO_KEY}'")


def _pasted_window(params: dict, name: str) -> int | float | None:
    """An auto window bound in the unit of the pasted delay (the panel has one unit for all three values).

    A bound written in the other unit (only X/Y/Z and API calls can mix them) is converted with the infotext's
    ``Steps``: p % to the step it resolves to, a step count to its share (None when ``Steps`` is unreadable)."""
    text = _auto_field(params, name) if _is_auto(params) else None
    delay = _pasted(params)
    if text is None or delay is None:
        return None
    bound = parse_delay_value(text, f"pasted infotext '{AUTO_KEY}'")
    if bound is None or bound.percent == delay.percent:
        return None if bound is None else _number(bound)
    steps = parse_delay(params.get("Steps"), "pasted infotext 'Steps'")
    if not steps:
        return None
    if bound.percent:
        return bound.steps(steps)
    share = 100.0 * bound.value / steps
    return int(share) if share.is_integer() else round(share, 4)


def pasted_auto_min(params: dict) -> int | float | None:
    return _pasted_window(params, "a")


def pasted_auto_max(params: dict) -> int | float | None:
    return _pasted_window(params, "b")


READERS = (
    pasted_enabled,
    pasted_delay,
    pasted_auto,
    pasted_sensitivity,
    pasted_auto_min,
    pasted_auto_max,
    pasted_unit,
)
"""One reader per panel component, in ``ui.build`` order."""


def infotext_fields(components: list) -> list[tuple[object, object]]:
    """The ``Script.infotext_fields`` pairs for the panel's components (in ``ui.build`` order). The analysis checkbox,
    last, is not in the infotext (it does not change the image): a paste leaves it as it is."""
    return list(zip(components[: len(READERS)], READERS, strict=True))


def paste_field_names() -> list:
    """The ``Script.paste_field_names``: the readers themselves, not infotext keys.

    "Send to img2img/inpaint" under txt2img's gallery copies each txt2img field whose infotext target is ``in`` this
    list (plus the WebUI's Prompt, Steps, Seed ...) to the img2img field with a matching target, paired by position.
    Our targets are these module-level functions, the same objects in both tabs, and ``in`` compares by ``==``
    (identity for functions), so all seven components travel; a key string would match no field at all.
    """
    return list(READERS)
