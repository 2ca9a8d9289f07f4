"""User-facing values (enable flag, delay) and their validation. No WebUI imports.

Values reach the extension from the UI, the HTTP API, pasted infotext and X/Y/Z plot axes; all of
them go through ``parse_delay``/``parse_enabled`` so that bad input degrades the same way
everywhere: a clear message, logged once, and a documented fallback instead of an exception.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any

from lib_negative_delay import MAX_DELAY

log = logging.getLogger("negative_prompt_delay")
if not log.handlers:
    _handler = logging.StreamHandler()
    _handler.setFormatter(logging.Formatter("[Negative Prompt Delay] %(message)s"))
    log.addHandler(_handler)
    log.setLevel(logging.INFO)
    log.propagate = False


class OnceLog:
    """Logs each distinct message once (per owner: a generation, or the process)."""

    def __init__(self) -> None:
        self.seen: set[str] = set()

    def warning(self, message: str) -> None:
        self._emit(logging.WARNING, message)

    def info(self, message: str) -> None:
        self._emit(logging.INFO, message)

    def error(self, message: str, exc_info: bool = False) -> None:
        self._emit(logging.ERROR, message, exc_info)

    def _emit(self, level: int, message: str, exc_info: bool = False) -> None:
        if message in self.seen:
            return
        if len(self.seen) > 256:  # a process-wide instance must not grow without bound
            self.seen.clear()
        self.seen.add(message)
        log.log(level, message, exc_info=exc_info)


process_log = OnceLog()


def _as_number(value: object) -> float | None:
    """A float from a number or numeric text; None for bools, other text and NaN."""
    if isinstance(value, bool):
        return None
    try:
        number = float(value) if isinstance(value, (int, float)) else float(str(value).strip())
    except (TypeError, ValueError):
        return None
    return None if number != number else number


def parse_delay(value: object, source: str, warn: OnceLog | None = None) -> int | None:
    """Turn a delay from any source into an int in ``0..MAX_DELAY``.

    Returns None (with one warning) for values that are not a number; negative values clamp to 0 and
    values above ``MAX_DELAY`` to ``MAX_DELAY``, also with one warning.  Floats are truncated toward 0
    only when they are whole ("5.0"); "5.5" is rejected.
    """
    warn = warn or process_log
    number = _as_number(value)
    if number is None:
        warn.warning(f"{source}: delay {value!r} is not a number of steps; ignored")
        return None
    if number in (float("inf"), float("-inf")) or number != int(number):
        warn.warning(f"{source}: delay {value!r} is not a whole number of steps; ignored")
        return None
    delay = int(number)
    if delay < 0:
        warn.warning(f"{source}: delay {delay} is negative; using 0")
        return 0
    if delay > MAX_DELAY:
        warn.warning(f"{source}: delay {delay} is above {MAX_DELAY}; using {MAX_DELAY}")
        return MAX_DELAY
    return delay


STEPS_UNIT = "steps"
PERCENT_UNIT = "%"
UNITS = (STEPS_UNIT, PERCENT_UNIT)
_UNIT_NAMES = {"steps": STEPS_UNIT, "step": STEPS_UNIT, "%": PERCENT_UNIT, "percent": PERCENT_UNIT}


@dataclass(frozen=True)
class Delay:
    """A delay as the user gave it: whole sampling steps, or a share of the sampling steps in percent."""

    value: float
    percent: bool = False

    def steps(self, total: int) -> int:
        """Steps before the switch in a schedule of ``total`` sampling steps.

        ``p %`` is ``ceil(p * total / 100)`` steps, computed exactly from the decimal text of ``p``: a whole
        ``p * total / 100`` gives that very step, a fractional one the next step, so the negative prompt never
        starts before the share of the schedule the user set.
        """
        if not self.percent:
            return int(self.value)
        share = Fraction(repr(float(self.value))) * max(int(total), 0) / 100
        return min(math.ceil(share), MAX_DELAY)

    def __str__(self) -> str:
        """The infotext form: ``4`` or ``20%``."""
        return f"{self.value:g}%" if self.percent else str(int(self.value))

    def describe(self, total: int) -> str:
        """For log lines and titles: ``step 4 of 20`` or ``20 % — step 4 of 20``."""
        where = f"step {self.steps(total)} of {total}"
        return f"{self.value:g} % — {where}" if self.percent else where


def parse_unit(value: object, source: str, warn: OnceLog | None = None) -> str:
    """``steps`` or ``%`` from the panel's unit choice or an API argument; anything else is steps, warned once."""
    if value is None:
        return STEPS_UNIT
    unit = _UNIT_NAMES.get(str(value).strip().lower())
    if unit is None:
        (warn or process_log).warning(f"{source}: delay unit {value!r} is not 'steps' or '%'; using steps")
        return STEPS_UNIT
    return unit


def parse_delay_value(value: object, source: str, unit: str = STEPS_UNIT, warn: OnceLog | None = None) -> Delay | None:
    """A ``Delay`` from any source: text ending in ``%`` is a share of the sampling steps whatever ``unit`` says,
    other values are in ``unit``.  Shares clamp to 0..100 (warned once); steps follow ``parse_delay``.
    None (warned once) when unreadable."""
    if isinstance(value, Delay):  # an X/Y/Z axis value, already parsed with its unit
        return value
    warn = warn or process_log
    text = value.strip() if isinstance(value, str) else None
    if text is not None and text.endswith("%"):
        value, unit = text[:-1].strip(), PERCENT_UNIT
    if unit != PERCENT_UNIT:
        steps = parse_delay(value, source, warn)
        return None if steps is None else Delay(steps)
    number = _as_number(value)
    if number is None or number in (float("inf"), float("-inf")):
        warn.warning(f"{source}: delay {value!r} is not a percentage of the sampling steps; ignored")
        return None
    if not 0.0 <= number <= 100.0:
        clamped = min(max(number, 0.0), 100.0)
        warn.warning(f"{source}: delay {number:g} % is outside 0..100 %; using {clamped:g} %")
        number = clamped
    return Delay(number, percent=True)


_TRUE = {"true", "1", "yes", "on", "enabled"}
_FALSE = {"false", "0", "no", "off", "disabled", ""}


def parse_enabled(value: object, source: str, warn: OnceLog | None = None) -> bool | None:
    """Bool from a checkbox, JSON bool, or text such as "True"/"false"; None (warned) when unreadable."""
    if isinstance(value, bool):
        return value
    if isinstance(value, (int, float)) and value in (0, 1):
        return bool(value)
    text = str(value).strip().lower()
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    (warn or process_log).warning(f"{source}: enabled flag {value!r} is not true/false; ignored")
    return None


@dataclass(frozen=True)
class DelaySettings:
    """What the user asked for in one generation."""

    enabled: bool = False
    delay: int = 0  # the fixed delay; with auto it is the fallback when detection cannot run
    auto: bool = False
    sensitivity: float = 0.3
    auto_min: int = 4  # earliest step auto mode may switch at
    auto_max: int = 7  # undecided images switch here
    # (delay, earliest, latest) as the user gave them, before shares of the schedule were resolved to the ints above
    given: tuple[Delay, Delay, Delay] | None = None

    def as_given(self) -> tuple[Delay, Delay, Delay]:
        """The delay, earliest and latest step as given (steps unless the user gave shares)."""
        return self.given or (Delay(self.delay), Delay(self.auto_min), Delay(self.auto_max))

    @property
    def active(self) -> bool:
        """Enabled with a delay that changes anything (fixed delay 0 is identical to disabled)."""
        return self.enabled and (self.delay > 0 or self.auto)


def parse_sensitivity(value: object, source: str, warn: OnceLog | None = None) -> float | None:
    """Sensitivity in 0..1 (clamped with one warning); None (warned) when not a number."""
    warn = warn or process_log
    number = _as_number(value)
    if number is None:
        warn.warning(f"{source}: sensitivity {value!r} is not a number; ignored")
        return None
    if not 0.0 <= number <= 1.0:
        clamped = min(max(number, 0.0), 1.0)
        warn.warning(f"{source}: sensitivity {number} is outside 0..1; using {clamped}")
        return clamped
    return number


@dataclass
class GenerationState:
    """Per-generation state, stored on the WebUI's processing object; dropped with it."""

    settings: DelaySettings
    log: OnceLog = field(default_factory=OnceLog)
    failed: bool = False
    never: bool = False  # the fixed delay is at or beyond the sampling steps: the negative prompt is never applied
    architecture: Any = None  # webui.architecture.Architecture of the model (how the empty prompt is shaped)
    # per-pass values, reset before every sampling pass
    prepared: bool = False  # before_sampling set this pass up (the callback does nothing otherwise)
    reference: object = None  # schedule.Reference of the first pass (txt2img levels the delay is read against)
    counting: bool = False  # this pass is a txt2img first pass: known step structures count steps
    scale: object = None  # schedule.TimestepScale when this pass's sampler passes timesteps, else None
    size: tuple = (0, 0)  # width, height of this pass (for the empty prompt's size conditioning)
    distilled: float | None = None  # the pass's distilled CFG scale (Forge / Neo), None where there is none
    empty: object = None  # the encoded empty prompt for this pass (one row), encoded on first use
    empty_key: object = None  # token of that encoding (key of its fitted copies)
    empty_identity: object = None  # checkpoint identity it was encoded with
    pattern: object = None  # EvalPattern of the sampler that owns the current denoiser
    pattern_owner: object = None  # that denoiser
    by_level: bool = False  # the sampler's evaluations did not match its step structure: levels decide
    step_equiv: int = 0  # equivalent step of the current sampler step (level mode)
    latched: int = 0  # highest equivalent step reached in this pass (samplers without step structure)
    detector: object = None  # AlignmentDetector of the current pass (auto mode)
    starts: list | None = None  # per-image first negative (equivalent) step of the hires pass (auto mode)
    auto_steps: list | None = None  # per-image switch steps of the first pass, for the hires pass
    seam: object = None  # forge_auto.Seam of the current pass (auto mode in a fork)
