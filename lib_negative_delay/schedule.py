"""When does the negative prompt take over? Pure step/noise-level arithmetic, no WebUI imports.

Two questions are answered here:

1. *Which sampler step is this denoiser evaluation part of?*  Samplers evaluate the denoiser a
   different number of times per step, and the WebUI's own step counter lags by one
   (see ``step_of_evaluation``).
2. *From which step of this pass does the negative prompt apply?*  A txt2img pass starts at the top
   of the noise schedule, so the answer is simply the delay. img2img and the hires-fix pass start
   part-way down the schedule; there the delay marks a *noise level* (see ``PassGeometry``).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass


@dataclass(frozen=True)
class PassGeometry:
    """Where one sampling pass sits inside the noise schedule it was cut from.

    ``requested_steps`` is the step count the delay refers to (the user's "Sampling steps", or the
    hires steps for the hires pass); ``full_steps`` is the length of the schedule the pass is cut
    from and ``offset`` the index of that schedule at which the pass starts.  A txt2img pass is
    ``(steps, steps, 0)``.
    """

    requested_steps: int
    full_steps: int
    offset: int

    @classmethod
    def txt2img(cls, steps: int) -> PassGeometry:
        return cls(requested_steps=steps, full_steps=steps, offset=0)

    @classmethod
    def partial(cls, requested_steps: int, full_steps: int, steps_run: int) -> PassGeometry:
        """A pass that runs the last ``steps_run`` steps of a ``full_steps`` schedule (img2img, hires)."""
        offset = max(0, full_steps - steps_run)
        return cls(requested_steps=requested_steps, full_steps=full_steps, offset=offset)

    def negative_start(self, delay: int) -> int:
        """First step of this pass that uses the real negative prompt.

        Schedules place step ``i`` of an ``n``-step run at the fraction ``i / (n - 1)`` of the noise
        range (the WebUI's default, Karras and exponential schedules alike), so the delay's noise
        level sits at ``delay / (requested_steps - 1)``; a pass step ``j`` keeps the empty negative
        while ``(offset + j) / (full_steps - 1)`` is below it.  For txt2img this is exactly
        ``delay``; for a pass that starts below the delay's noise level it is 0.  A delay of at least
        ``requested_steps`` returns the pass's step count: the negative prompt is never applied.
        """
        run = self.full_steps - self.offset
        if delay <= 0:
            return 0
        if delay >= self.requested_steps:
            return run
        # smallest integer j with (offset + j) * (requested - 1) >= delay * (full - 1)
        first = -((-delay * (self.full_steps - 1)) // (self.requested_steps - 1)) - self.offset
        return min(max(0, first), run)


class EvalPattern(enum.Enum):
    """How a sampler's denoiser evaluations map onto its steps."""

    ONE_PER_STEP = "one evaluation per step"
    TWO_PER_STEP = "two evaluations per step"  # Heun, DPM2, DPM++ 2S a, DPM++ SDE (last step may have one)
    PLMS = "two evaluations in the first step, then one"
    FOLLOW_CALLBACK = "follow the WebUI's step counter"  # unknown/adaptive samplers


def step_of_evaluation(eval_index: int, sampling_step: int, pattern: EvalPattern) -> int:
    """0-based sampler step of the ``eval_index``-th denoiser evaluation of a pass.

    ``sampling_step`` is the WebUI's counter, set by the sampler's per-step callback *after* a step's
    first evaluation: it reads 0 during steps 0 and 1 and lags by one afterwards, and second
    evaluations of a step see the step's own index.  Known patterns count evaluations exactly;
    ``FOLLOW_CALLBACK`` corrects the lag (exact for one-evaluation-per-step samplers).
    """
    if pattern is EvalPattern.TWO_PER_STEP:
        return eval_index // 2
    if pattern is EvalPattern.PLMS:
        return 0 if eval_index < 2 else eval_index - 1
    if pattern is EvalPattern.ONE_PER_STEP:
        return eval_index
    return 0 if eval_index == 0 else sampling_step + 1


def consistent_with_counter(step: int, sampling_step: int) -> bool:
    """Whether a computed step agrees with the WebUI's lagging counter (which reads step-1 or step)."""
    if step == 0:
        return sampling_step == 0
    return sampling_step in (step - 1, step)


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
}
_ONE_PER_STEP_NAMES = {"ddim", "ddim cfg++", "unipc", "lcm"}


def pattern_for_sampler(name: str | None, funcname: str | None, second_order: bool | None) -> EvalPattern:
    """Pick the evaluation pattern from what the WebUI tells about its sampler.

    ``funcname`` is the k-diffusion function name when known, ``second_order`` the sampler's
    ``second_order`` option.  Unknown samplers (Restart, DPM fast/adaptive, other extensions')
    follow the WebUI's step counter.
    """
    lowered = (name or "").strip().lower()
    if funcname in _TWO_PER_STEP_FUNCS:
        return EvalPattern.TWO_PER_STEP
    if funcname in _ONE_PER_STEP_FUNCS:
        return EvalPattern.ONE_PER_STEP
    if lowered == "plms":
        return EvalPattern.PLMS
    if lowered in _ONE_PER_STEP_NAMES:
        return EvalPattern.ONE_PER_STEP
    if second_order and lowered != "restart":
        return EvalPattern.TWO_PER_STEP
    return EvalPattern.FOLLOW_CALLBACK
