"""The WebUI adapter's runtime: per-generation state on ``p`` and the CFG-denoiser callback.

Lifecycle of one generation:

- ``start_generation`` (from ``Script.process``) reads the settings, writes the infotext and stores a
  ``GenerationState`` on the processing object ``p``;
- ``before_sampling`` (from ``Script.process_before_every_sampling``, once per pass: first pass,
  hires pass, every batch) works out from which step this pass uses the negative prompt and encodes
  the empty prompt for the pass size (cached);
- ``on_cfg_denoiser`` (registered once at import) runs for every denoiser evaluation of every
  generation and swaps ``params.text_uncond`` while the step is before that start;
- ``on_cfg_denoised`` (auto mode only) measures the detector's signal after the model call of the
  evaluation and switches images at that very step (``probe.py``).

Nothing is kept in globals except caches of encoded tensors and the one-evaluation hand-off from
``on_cfg_denoiser`` to ``on_cfg_denoised``; a failed or interrupted generation leaves nothing behind
because the state dies with ``p``.
"""

from __future__ import annotations

from typing import Any

from lib_negative_delay import INFOTEXT_KEY
from lib_negative_delay.conditioning import UnsupportedConditioning, mix_rows
from lib_negative_delay.detector import AlignmentDetector, threshold_for
from lib_negative_delay.schedule import (
    EvalPattern,
    PassGeometry,
    consistent_with_counter,
    pattern_for_sampler,
    step_of_evaluation,
)
from lib_negative_delay.settings import (
    DelaySettings,
    GenerationState,
    parse_delay,
    parse_enabled,
    parse_sensitivity,
    process_log,
)
from lib_negative_delay.webui import empty_cond, probe

STATE_ATTR = "negative_prompt_delay_state"
OVERRIDE_ENABLED = "negative_prompt_delay_enabled"  # set by X/Y/Z axes; preferred over the UI value
OVERRIDE_DELAY = "negative_prompt_delay_delay"
OVERRIDE_AUTO = "negative_prompt_delay_auto"
OVERRIDE_SENSITIVITY = "negative_prompt_delay_sensitivity"
STEPS_KEY = f"{INFOTEXT_KEY} steps"  # per-image switch steps chosen by auto mode
AUTO_KEY = f"{INFOTEXT_KEY} auto"  # sensitivity and bounds of auto mode


def settings_from_args(
    p: Any,
    enabled: object,
    delay: object,
    auto: object = False,
    sensitivity: object = 0.5,
    auto_min: object = DelaySettings.auto_min,
    auto_max: object = DelaySettings.auto_max,
) -> DelaySettings:
    """Combine UI/API args with X/Y/Z overrides on ``p`` into validated settings."""
    enabled = getattr(p, OVERRIDE_ENABLED, enabled)
    delay = getattr(p, OVERRIDE_DELAY, delay)
    auto = getattr(p, OVERRIDE_AUTO, auto)
    sensitivity = getattr(p, OVERRIDE_SENSITIVITY, sensitivity)
    flag = parse_enabled(enabled, "enabled")
    value = parse_delay(delay, "delay")
    if flag and value is None:
        process_log.warning(f"delay {delay!r} is unusable; the extension is off for this generation")
    auto_flag = bool(parse_enabled(auto, "auto-detect"))
    sens = parse_sensitivity(sensitivity, "sensitivity")
    low = parse_delay(auto_min, "earliest auto step")
    high = parse_delay(auto_max, "latest auto step")
    low = DelaySettings.auto_min if low is None else low
    high = max(low, DelaySettings.auto_max if high is None else high)
    return DelaySettings(
        enabled=bool(flag) and value is not None,
        delay=value or 0,
        auto=auto_flag,
        sensitivity=0.5 if sens is None else sens,
        auto_min=low,
        auto_max=high,
    )


def _pass_geometries(p: Any) -> dict[str, PassGeometry]:
    """Geometry of each pass this generation will run, keyed "first"/"hires"."""
    from modules import sd_samplers_common

    steps = int(p.steps)
    if _is_img2img(p):
        full, t_enc = sd_samplers_common.setup_img2img_steps(p)
        first = PassGeometry.partial(steps, full, t_enc + 1)
    else:
        first = PassGeometry.txt2img(steps)
    out = {"first": first}
    if getattr(p, "enable_hr", False) and not _is_img2img(p):
        hr_steps = int(getattr(p, "hr_second_pass_steps", 0) or steps)
        full, t_enc = sd_samplers_common.setup_img2img_steps(p, hr_steps)
        out["hires"] = PassGeometry.partial(hr_steps, full, t_enc + 1)
    return out


def _is_img2img(p: Any) -> bool:
    return getattr(p, "init_images", None) is not None


def _negative_prompts(p: Any) -> list[str]:
    prompts = getattr(p, "all_negative_prompts", None)
    if not prompts:
        prompts = [getattr(p, "negative_prompt", "") or ""]
    return [str(x) for x in prompts]


def start_generation(p: Any, enabled: object, delay: object, *auto_args: object) -> GenerationState | None:
    """Set up one generation; returns its state, or None when the extension is off."""
    settings = settings_from_args(p, enabled, delay, *auto_args)
    for key in (INFOTEXT_KEY, STEPS_KEY, AUTO_KEY):
        # X/Y/Z cells are shallow copies of one p and share this dict: drop keys an earlier cell wrote
        p.extra_generation_params.pop(key, None)
    if not settings.enabled:
        setattr(p, STATE_ATTR, None)
        return None
    if settings.auto:
        p.extra_generation_params[INFOTEXT_KEY] = "auto"
        p.extra_generation_params[AUTO_KEY] = (
            f"sensitivity {settings.sensitivity:g} steps {settings.auto_min}-{settings.auto_max} "
            f"fallback {settings.delay}"
        )
    else:
        p.extra_generation_params[INFOTEXT_KEY] = settings.delay
    state = GenerationState(settings=settings)
    setattr(p, STATE_ATTR, state)
    if not settings.active:
        return state  # delay 0: identical to disabled; recorded so that a paste restores the setting
    if all(not x.strip() for x in _negative_prompts(p)):
        state.log.info("the negative prompt is empty: nothing to delay")
        state.failed = True
        return state
    try:
        geometries = _pass_geometries(p)
    except Exception as exc:  # never break a generation
        state.log.error(f"could not read the step settings ({exc}); negative prompt applied as usual", exc_info=True)
        state.failed = True
        return state
    if settings.auto:
        state.log.info(
            f"negative prompt from the detected critical step (sensitivity {settings.sensitivity:g}, "
            f"steps {settings.auto_min}-{settings.auto_max})"
        )
    else:
        parts = []
        for label, geometry in geometries.items():
            start = geometry.negative_start(settings.delay)
            run = geometry.full_steps - geometry.offset
            name = {"first": "img2img" if _is_img2img(p) else "", "hires": "hires"}[label]
            where = f"{name} " if name else ""
            if start >= run:
                parts.append(f"never in the {run} {where}steps (delay {settings.delay} >= {geometry.requested_steps})")
            else:
                parts.append(f"from {where}step {start} of {run}")
        state.log.info("negative prompt " + "; ".join(parts))
        if settings.delay >= int(p.steps):
            state.log.warning(
                f"delay {settings.delay} is not below the {p.steps} sampling steps: "
                "the negative prompt is never applied"
            )
    state.geometries = geometries
    return state


def before_sampling(p: Any) -> None:
    """Prepare one sampling pass (first pass, hires pass, every batch of a batch count)."""
    state: GenerationState | None = getattr(p, STATE_ATTR, None)
    if state is None or state.failed or not state.settings.active:
        return
    try:
        is_hires = bool(getattr(p, "is_hr_pass", False))
        geometry = state.geometries["hires" if is_hires else "first"]
        state.negative_start = geometry.negative_start(state.settings.delay)
        state.pass_steps = geometry.full_steps - geometry.offset
        state.follow_callback = False
        state.empty = None
        state.pattern_owner = None
        state.detector = None
        state.starts = None
        if state.settings.auto:
            _setup_auto_pass(state, geometry, is_hires, int(getattr(p, "batch_size", 1) or 1))
        if state.negative_start == 0 and not state.starts and state.detector is None:
            return
        from modules import shared

        width, height = (int(p.hr_upscale_to_x), int(p.hr_upscale_to_y)) if is_hires else (int(p.width), int(p.height))
        state.empty_key, state.empty = empty_cond.encode_empty(shared.sd_model, width, height)
    except Exception as exc:
        state.failed = True
        state.log.error(
            f"could not prepare the empty negative prompt ({exc}); negative prompt applied as usual", exc_info=True
        )


def _setup_auto_pass(state: GenerationState, geometry: PassGeometry, is_hires: bool, batch: int) -> None:
    """Auto mode: the first pass detects per image; the hires pass reuses each image's noise level."""
    settings = state.settings
    if is_hires:
        detected = state.auto_steps or [settings.delay] * batch
        state.starts = [geometry.negative_start(step) for step in detected]
        return
    state.detector = AlignmentDetector(
        batch,
        threshold_for(settings.sensitivity),
        geometry.negative_start(settings.auto_min),
        geometry.negative_start(settings.auto_max),
    )
    state.auto_steps = None


def _sampler_pattern(denoiser: Any, p: Any) -> EvalPattern:
    sampler = getattr(denoiser, "sampler", None)
    config = getattr(sampler, "config", None)
    name = getattr(config, "name", None) or getattr(p, "sampler_name", None)
    funcname = getattr(sampler, "funcname", None)
    if funcname is not None and not isinstance(funcname, str):
        funcname = getattr(funcname, "__name__", None)
    options = getattr(config, "options", None) or {}
    return pattern_for_sampler(name, funcname, bool(options.get("second_order", False)))


def _record_auto_steps(state: GenerationState, p: Any) -> None:
    state.auto_steps = state.detector.finish(state.pass_steps)
    p.extra_generation_params[STEPS_KEY] = " ".join(str(x) for x in state.auto_steps)


def _auto_failed(state: GenerationState, exc: Exception) -> None:
    state.detector = None
    state.log.warning(f"auto-detection failed ({exc}); using the fixed delay {state.settings.delay}")


def _uses_negative(state: GenerationState, p: Any, params: Any, step: int) -> list[bool]:
    """Per image of the batch: does this step use the real negative prompt? Sets up auto mode's probe."""
    detector: AlignmentDetector | None = state.detector
    if detector is not None:
        try:
            if detector.needs(step):
                images = detector.probing(step)
                if images:
                    _HANDOFF.append((state, p, probe.prepare(params, detector, step, images)))
                _record_auto_steps(state, p)
            return detector.uses_negative(step)
        except Exception as exc:
            _auto_failed(state, exc)
    if state.starts is not None:
        return [step >= start for start in state.starts]
    return [step >= state.negative_start]


# auto mode's hand-off from on_cfg_denoiser to on_cfg_denoised of the same evaluation (at most one entry)
_HANDOFF: list[tuple[GenerationState, Any, probe.Probe]] = []


def on_cfg_denoised(params: Any) -> None:
    """``script_callbacks.on_cfg_denoised`` hook: auto mode's measurement after the model call."""
    if not _HANDOFF:
        return
    state, p, pending = _HANDOFF.pop()
    if state.failed or state.detector is not pending.detector:
        return
    try:
        if probe.run(pending, params.x):
            _record_auto_steps(state, p)
    except Exception as exc:  # never break a generation
        _auto_failed(state, exc)


def on_cfg_denoiser(params: Any) -> None:
    """``script_callbacks.on_cfg_denoiser`` hook: use the empty negative before the start step."""
    _HANDOFF.clear()
    denoiser = getattr(params, "denoiser", None)
    p = getattr(denoiser, "p", None)
    state: GenerationState | None = getattr(p, STATE_ATTR, None)
    if state is None or state.failed or state.empty is None:
        return
    try:
        if state.pattern_owner is not denoiser:
            state.pattern_owner = denoiser
            state.pattern = _sampler_pattern(denoiser, p)
        pattern = state.pattern
        eval_index = int(getattr(denoiser, "step", 0))
        counter = int(params.sampling_step)
        if state.follow_callback:
            pattern = EvalPattern.FOLLOW_CALLBACK
        step = step_of_evaluation(eval_index, counter, pattern)
        if pattern is not EvalPattern.FOLLOW_CALLBACK and not consistent_with_counter(step, counter):
            state.follow_callback = True
            state.log.warning(
                f"sampler {getattr(p, 'sampler_name', '?')!r} evaluates the model in an unexpected order; "
                "following the WebUI's step counter for the rest of this pass"
            )
            step = step_of_evaluation(eval_index, counter, EvalPattern.FOLLOW_CALLBACK)
        uses_negative = _uses_negative(state, p, params, step)
        if all(uses_negative):
            return
        from modules import shared

        if state.empty_key[0] != id(shared.sd_model):  # the refiner swapped the checkpoint mid-pass
            state.empty_key, state.empty = empty_cond.encode_empty(shared.sd_model, *state.empty_key[2:])
        empty = empty_cond.fitted.get(state.empty_key, state.empty, params.text_uncond)
        if any(uses_negative):
            empty = mix_rows(empty, params.text_uncond, uses_negative)
        params.text_uncond = empty
    except UnsupportedConditioning as exc:
        state.failed = True
        state.log.error(f"unsupported model or conditioning ({exc}); negative prompt applied as usual")
    except Exception as exc:
        state.failed = True
        state.log.error(f"internal error ({exc}); negative prompt applied as usual for this generation", exc_info=True)
