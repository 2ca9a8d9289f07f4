"""Reading ``Negative delay: N`` back from pasted infotext ("Send to txt2img", PNG info, API ``infotext``)."""

from __future__ import annotations

from lib_negative_delay import INFOTEXT_KEY
from lib_negative_delay.settings import parse_delay


def pasted_delay(params: dict) -> int | None:
    """Delay to restore from parsed infotext; None leaves the slider as it is (absent or malformed key)."""
    if INFOTEXT_KEY not in params:
        return None
    return parse_delay(params[INFOTEXT_KEY], f"pasted infotext '{INFOTEXT_KEY}'")


def pasted_enabled(params: dict) -> bool:
    """Enabled exactly when the infotext carries a usable delay (images made without it turn it off)."""
    return pasted_delay(params) is not None


def infotext_fields(enabled: object, delay: object) -> list[tuple[object, object]]:
    """The ``Script.infotext_fields`` pairs for the two components."""
    return [(enabled, pasted_enabled), (delay, pasted_delay)]
