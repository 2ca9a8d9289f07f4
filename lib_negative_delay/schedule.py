"""When does the negative prompt take over? Pure step/noise-level arithmetic, no WebUI imports.

**The delay marks a noise level.**  A delay of N means: the noise level that a txt2img run with the
user's *Sampling steps* and schedule reaches at the start of its step N.  Every denoiser evaluation is
mapped to its *equivalent step* — the txt2img step whose noise level it has reached (``Reference``) —
and uses the negative prompt when that step is at least N.  The consequences:

- txt2img with a sampler of known step structure (one or two evaluations per step, PLMS, UniPC):
  steps 0…N−1 get the empty prompt, every evaluation of a step alike (steps are counted; see
  ``step_of_evaluation``);
- img2img and the hires pass start part-way down the schedule: each of their steps is mapped by the
  noise level of its first evaluation, whatever their own step count, sampler or scheduler;
- samplers without that step structure (DPM fast, DPM adaptive, Restart, other extensions' samplers)
  switch at their first evaluation at or below the level, and stay switched (``EvalPattern.NO_STEPS``).
"""

from __future__ import annotations

import bisect
import enum
import math
from collections.abc import Sequence
from dataclasses import dataclass

LEVEL_RTOL = 1e-4
"""Relative tolerance when comparing noise levels: float rounding of the samplers' own sigma arithmetic is
~1e-7; neighbouring steps of any schedule up to 150 steps differ by more than 1e-3."""


@dataclass(frozen=True)
class Reference:
    """Noise levels (as k-diffusion sigmas) at the start of each step of the reference txt2img run."""

    levels: tuple[float, ...]

    def __post_init__(self) -> None:
        if not self.levels or any(not math.isfinite(x) or x < 0 for x in self.levels):
            raise ValueError(f"unusable reference noise levels {self.levels[:4]}…")
        if any(b > a for a, b in zip(self.levels, self.levels[1:], strict=False)):
            raise ValueError("reference noise levels must not increase")

    @property
    def steps(self) -> int:
        return len(self.levels)

    def equivalent_step(self, level: float) -> int:
        """The last reference step whose level is at or above ``level`` (0 above the top of the schedule).

        So ``equivalent_step(level) >= N`` exactly when ``level`` is at or below the level of step N, and a
        txt2img run's own level at step k maps back to k.
        """
        # count of reference levels r with level <= r * (1 + rtol); levels are non-increasing
        keys = [-r * (1 + LEVEL_RTOL) for r in self.levels]
        count = bisect.bisect_right(keys, -level)
        return max(0, count - 1)

    def never(self, delay: int) -> bool:
        """A delay at or beyond the reference's last step: the negative prompt is never applied."""
        return delay >= self.steps


class EvalPattern(enum.Enum):
    """How a sampler's denoiser evaluations map onto its steps."""

    ONE_PER_STEP = "one evaluation per step"
    TWO_PER_STEP = "two evaluations per step"  # Heun, DPM2, DPM++ 2S a, DPM++ SDE (last step may have one)
    PLMS = "two evaluations in the first step, then one"
    LATE_CALLBACK = "one evaluation per step, step callback after the next evaluation"  # UniPC
    NO_STEPS = "no fixed step structure: the noise level of every evaluation decides"


def step_of_evaluation(eval_index: int, pattern: EvalPattern) -> int:
    """0-based sampler step of the ``eval_index``-th denoiser evaluation of a pass (not for ``NO_STEPS``)."""
    if pattern is EvalPattern.TWO_PER_STEP:
        return eval_index // 2
    if pattern is EvalPattern.PLMS:
        return 0 if eval_index < 2 else eval_index - 1
    return eval_index


def starts_step(eval_index: int, pattern: EvalPattern) -> bool:
    """Whether the ``eval_index``-th evaluation is the first of its step (its level is the step's level)."""
    if pattern is EvalPattern.TWO_PER_STEP:
        return eval_index % 2 == 0
    if pattern is EvalPattern.PLMS:
        return eval_index != 1
    return True


def consistent_with_counter(step: int, sampling_step: int, pattern: EvalPattern) -> bool:
    """Whether a counted step agrees with the WebUI's lagging ``state.sampling_step``.

    The sampler's step callback sets the counter after a step's first evaluation, so it reads ``step - 1``
    (or ``step`` for a second evaluation, which runs after the callback); it reads 0 during steps 0 and 1.
    UniPC's callback fires one evaluation later still: 0, 0, 0, 1, 2, …
    """
    lag = 2 if pattern is EvalPattern.LATE_CALLBACK else 1
    return max(0, step - lag) <= sampling_step <= step and (step > 0 or sampling_step == 0)


_TWO_PER_STEP_FUNCS = {
    "sample_heun",
    "sample_dpm_2",
    "sample_dpm_2_ancestral",
    "sample_dpmpp_2s_ancestral",
    "sample_dpmpp_sde",
}
_ONE_PER_STEP_FUNCS = {
    "sample_euler",
    "sample_euler_ancestral",
    "sample_lms",
    "sample_dpmpp_2m",
    "sample_dpmpp_2m_sde",
    "sample_dpmpp_3m_sde",
    "sample_lcm",
}
_ONE_PER_STEP_NAMES = {"ddim", "ddim cfg++", "ddim_cfgpp", "lcm"}
_NO_STEPS = {"dpm fast", "dpm adaptive", "restart", "sample_dpm_fast", "sample_dpm_adaptive", "restart_sampler"}


def pattern_for_sampler(name: str | None, funcname: str | None) -> EvalPattern:
    """Pick the evaluation pattern from the sampler's name and function name (``sample_euler``, ``plms``, …).

    Samplers whose step count is not the user's (DPM fast/adaptive, Restart) and samplers this table does
    not know (other extensions') are read by noise level: ``NO_STEPS``.
    """
    lowered = (name or "").strip().lower()
    if lowered in _NO_STEPS or funcname in _NO_STEPS:
        return EvalPattern.NO_STEPS
    if funcname in _TWO_PER_STEP_FUNCS:
        return EvalPattern.TWO_PER_STEP
    if funcname in _ONE_PER_STEP_FUNCS or lowered in _ONE_PER_STEP_NAMES or funcname in _ONE_PER_STEP_NAMES:
        return EvalPattern.ONE_PER_STEP
    if lowered == "plms" or funcname == "plms":
        return EvalPattern.PLMS
    if lowered == "unipc" or funcname == "unipc":
        return EvalPattern.LATE_CALLBACK
    return EvalPattern.NO_STEPS


# --- timesteps and sigmas -----------------------------------------------------------------------------------------


class TimestepScale:
    """Model timesteps (what DDIM, PLMS and UniPC pass as ``sigma``) as k-diffusion sigmas.

    ``sigma(t) = sqrt(1 / alpha_bar(t) - 1)``, with ``log sqrt(alpha_bar)`` interpolated linearly between
    integer timesteps (how UniPC's discrete noise schedule treats fractional times such as 874.125).
    """

    def __init__(self, alphas_cumprod: Sequence[float]) -> None:
        self.half_log_alpha = [0.5 * math.log(float(a)) for a in alphas_cumprod]
        if len(self.half_log_alpha) < 2:
            raise ValueError("alphas_cumprod is too short")

    def _half_log_alpha(self, t: float) -> float:
        last = len(self.half_log_alpha) - 1
        t = min(max(float(t), 0.0), float(last))
        lo = min(int(math.floor(t)), last - 1)
        frac = t - lo
        return self.half_log_alpha[lo] * (1 - frac) + self.half_log_alpha[lo + 1] * frac

    def sigma(self, t: float) -> float:
        return math.sqrt(math.expm1(-2.0 * self._half_log_alpha(t)))

    @property
    def total(self) -> int:
        return len(self.half_log_alpha)


def unipc_levels(scale: TimestepScale, steps: int, skip_type: str) -> list[float]:
    """Sigmas at the start of each of UniPC's ``steps`` steps in txt2img (time runs from 1 to 1/N, N = 1000).

    Its model input time is ``(t - 1/N) * N``; ``time_uniform`` spaces t evenly, ``time_quadratic`` spaces
    sqrt(t) evenly, and ``logSNR`` spaces log-SNR evenly (geometric in sigma).
    """
    total = scale.total
    t_start, t_end = 1.0, 1.0 / total
    if skip_type == "logSNR":
        top, bottom = math.log(scale.sigma(total - 1)), math.log(scale.sigma(0))
        return [math.exp(top + (bottom - top) * k / steps) for k in range(steps)]
    if skip_type == "time_quadratic":
        a, b = math.sqrt(t_start), math.sqrt(t_end)
        times = [(a + (b - a) * k / steps) ** 2 for k in range(steps)]
    else:  # time_uniform, the default
        times = [t_start + (t_end - t_start) * k / steps for k in range(steps)]
    return [scale.sigma((t - 1.0 / total) * total) for t in times]
