"""X/Y/Z plot axes: ``[Negative Delay] Delay`` (steps), ``[Negative Delay] Delay (% of steps)``, ``Enabled``,
``Auto-detect`` and ``Sensitivity``.

The delay axes carry their unit with each value (a ``Delay``), so a steps axis means steps and a % axis means shares
whatever unit the panel is set to; the panel's auto-detect window keeps the panel's unit.  The % axis takes a list
(``10%, 20%, 30%`` or ``10, 20, 30``): the X/Y/Z script expands ``a-b (step)`` ranges only for plain int and float
axes, and a float axis could not read ``20%``."""

from __future__ import annotations

from typing import Any

from lib_negative_delay import XYZ_PREFIX
from lib_negative_delay.settings import Delay, parse_delay_value, parse_enabled, parse_sensitivity, process_log
from lib_negative_delay.webui.generation import OVERRIDE_AUTO, OVERRIDE_DELAY, OVERRIDE_ENABLED, OVERRIDE_SENSITIVITY

DELAY_LABEL = f"{XYZ_PREFIX} Delay"
PERCENT_LABEL = f"{XYZ_PREFIX} Delay (% of steps)"
ENABLED_LABEL = f"{XYZ_PREFIX} Enabled"
AUTO_LABEL = f"{XYZ_PREFIX} Auto-detect"
SENSITIVITY_LABEL = f"{XYZ_PREFIX} Sensitivity"


def find_xyz_module() -> Any | None:
    """The built-in X/Y/Z plot script's module, found through ``scripts.scripts_data``."""
    from modules import scripts

    for data in scripts.scripts_data:
        if str(getattr(data, "path", "")).replace("\\", "/").endswith("xyz_grid.py"):
            return data.module
    return None


def apply_delay(p: Any, value: object, _values: object) -> None:
    """Axis value → delay override; putting the delay on an axis turns the extension on for the cell."""
    delay = parse_delay_value(value, "X/Y/Z axis")  # a % axis value is a Delay already; a steps value an int
    if delay is not None:
        setattr(p, OVERRIDE_DELAY, delay)
        setattr(p, OVERRIDE_ENABLED, True)


def percent_value(text: object) -> Delay:
    """The % axis's value type: ``20%``, ``20 %`` or ``20`` → a share of 20 %; ValueError (the X/Y/Z script shows
    it before any image is made) for anything that is not a number from 0 to 100."""
    raw = str(text).strip()
    number = raw[:-1].strip() if raw.endswith("%") else raw
    try:
        share = float(number)
    except ValueError:
        share = float("nan")
    if not 0.0 <= share <= 100.0:
        raise ValueError(f"{PERCENT_LABEL}: {raw!r} is not a share of the sampling steps from 0 to 100 %")
    return Delay(share, percent=True)


def apply_enabled(p: Any, value: object, _values: object) -> None:
    flag = parse_enabled(value, "X/Y/Z axis")
    if flag is not None:
        setattr(p, OVERRIDE_ENABLED, flag)


def apply_auto(p: Any, value: object, _values: object) -> None:
    """Auto on/off; turning auto on also turns the extension on for the cell."""
    flag = parse_enabled(value, "X/Y/Z axis")
    if flag is not None:
        setattr(p, OVERRIDE_AUTO, flag)
        if flag:
            setattr(p, OVERRIDE_ENABLED, True)


def apply_sensitivity(p: Any, value: object, _values: object) -> None:
    """Sensitivity on an axis implies auto mode (and the extension) for those cells."""
    sensitivity = parse_sensitivity(value, "X/Y/Z axis")
    if sensitivity is not None:
        setattr(p, OVERRIDE_SENSITIVITY, sensitivity)
        setattr(p, OVERRIDE_AUTO, True)
        setattr(p, OVERRIDE_ENABLED, True)


def confirm_delays(_p: Any, values: list) -> None:
    """Reject bad axis values before any image is generated (the X/Y/Z script shows the message)."""
    for value in values:
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise RuntimeError(f"{DELAY_LABEL}: {value!r} is not a step count (0 or more)")


def register_axes(quiet: bool = False) -> None:
    """Append the axes once, however often the UI is rebuilt (at import, and as the ``on_before_ui`` hook)."""
    try:
        xyz = find_xyz_module()
        if xyz is None:
            if not quiet:
                process_log.info("X/Y/Z plot script not found; no axes added")
            return
        if any(str(getattr(opt, "label", "")).startswith(XYZ_PREFIX) for opt in xyz.axis_options):
            return
        xyz.axis_options.extend(
            [
                xyz.AxisOption(DELAY_LABEL, int, apply_delay, confirm=confirm_delays),
                xyz.AxisOption(ENABLED_LABEL, str, apply_enabled, choices=lambda: ["True", "False"]),
                xyz.AxisOption(AUTO_LABEL, str, apply_auto, choices=lambda: ["True", "False"]),
                xyz.AxisOption(SENSITIVITY_LABEL, float, apply_sensitivity),
                # last: API calls name axes by their index in this list, so earlier axes keep theirs
                xyz.AxisOption(PERCENT_LABEL, percent_value, apply_delay),
            ]
        )
    except Exception as exc:  # a UI hook must never stop the WebUI from starting
        process_log.error(f"could not add X/Y/Z axes: {exc}")
