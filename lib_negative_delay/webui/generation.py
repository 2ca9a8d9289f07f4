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

from dataclasses import replace
from typing import Any

from lib_negative_delay import INFOTEXT_KEY, MAX_DELAY, VERSION
from lib_negative_delay.conditioning import UnsupportedConditioning, mix_rows, mixable
from lib_negative_delay.detector import AlignmentDetector, threshold_for
from lib_negative_delay.schedule import (
    EvalPattern,
    Reference,
    consistent_with_counter,
    pattern_for_sampler,
    starts_step,
    step_of_evaluation,
)
from lib_negative_delay.settings import (
    STEPS_UNIT,
    Delay,
    DelaySettings,
    GenerationState,
    OnceLog,
    parse_delay_value,
    parse_enabled,
    parse_sensitivity,
    parse_unit,
    process_log,
)
from lib_negative_delay.webui import architecture, empty_cond, forge_auto, host, levels, probe, sheet

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
    sensitivity: object = DelaySettings.sensitivity,
    auto_min: object = DelaySettings.auto_min,
    auto_max: object = DelaySettings.auto_max,
    unit: object = STEPS_UNIT,
) -> DelaySettings:
    """Combine UI/API args with X/Y/Z overrides on ``p`` into validated settings.

    ``unit`` (``steps`` or ``%``) says what the numbers mean; a value written ``"20%"`` is a share whatever the unit.
    Shares are resolved here against ``p.steps`` (the first pass's *Sampling steps*), so every X/Y/Z cell resolves
    its own."""
    enabled = getattr(p, OVERRIDE_ENABLED, enabled)
    delay = getattr(p, OVERRIDE_DELAY, delay)
    auto = getattr(p, OVERRIDE_AUTO, auto)
    sensitivity = getattr(p, OVERRIDE_SENSITIVITY, sensitivity)
    unit = parse_unit(unit, "delay unit")
    flag = parse_enabled(enabled, "enabled")
    value = parse_delay_value(delay, "delay", unit)
    if flag and value is None:
        process_log.warning(f"delay {delay!r} is unusable; the extension is off for this generation")
    auto_flag = bool(parse_enabled(auto, "auto-detect"))
    sens = parse_sensitivity(sensitivity, "sensitivity")
    low = parse_delay_value(auto_min, "earliest auto step", unit) or Delay(DelaySettings.auto_min)
    high = parse_delay_value(auto_max, "latest auto step", unit) or Delay(DelaySettings.auto_max)
    usable = value is not None
    value = value or Delay(0)
    steps = _sampling_steps(p)
    earliest = low.steps(steps)
    if auto_flag and high.steps(steps) < earliest:
        process_log.warning(f"auto window {low}-{high} ends before it starts; using {low}-{low}")
        high = low  # the window that runs, also in the infotext
    return DelaySettings(
        enabled=bool(flag) and usable,
        delay=value.steps(steps),
        auto=auto_flag,
        sensitivity=DelaySettings.sensitivity if sens is None else sens,
        auto_min=earliest,
        auto_max=high.steps(steps),
        given=(value, low, high),
    )


def _sampling_steps(p: Any) -> int:
    try:
        return max(int(getattr(p, "steps", 0) or 0), 0)
    except (TypeError, ValueError):
        return 0


def _is_img2img(p: Any) -> bool:
    return getattr(p, "init_images", None) is not None


def _negative_prompts(p: Any) -> list[str]:
    prompts = getattr(p, "all_negative_prompts", None)
    if not prompts:
        prompts = [getattr(p, "negative_prompt", "") or ""]
    return [str(x) for x in prompts]


def start_generation(
    p: Any, enabled: object, delay: object, *auto_args: object, analysis: object = False
) -> GenerationState | None:
    """Set up one generation; returns its state, or None when the extension is off. ``analysis``: draw the analysis
    sheet (``sheet``), whether the delay is on or not."""
    settings = settings_from_args(p, enabled, delay, *auto_args)
    sheet.start(p, analysis, settings.sensitivity, OnceLog())
    # X/Y/Z cells are shallow copies of one p and share this dict: drop keys an earlier cell wrote. A p that already
    # carries a state is a copy of a generation under way, processed again by another extension (ADetailer does so
    # after the last image of a batch): the switch steps auto mode recorded still describe that batch's images.
    again = getattr(p, STATE_ATTR, None) is not None
    for key in (INFOTEXT_KEY, AUTO_KEY) if again else (INFOTEXT_KEY, STEPS_KEY, AUTO_KEY):
        p.extra_generation_params.pop(key, None)
    if not settings.enabled:
        setattr(p, STATE_ATTR, None)
        return None
    given, low, high = settings.as_given()
    if settings.auto:
        p.extra_generation_params[INFOTEXT_KEY] = "auto"
        window = f"steps {low}-{high} fallback {given}"
        p.extra_generation_params[AUTO_KEY] = f"sensitivity {settings.sensitivity:g} {window}"
    else:
        p.extra_generation_params[INFOTEXT_KEY] = str(given) if given.percent else settings.delay
    state = GenerationState(settings=settings)
    setattr(p, STATE_ATTR, state)
    if not settings.active:
        return state  # delay 0: identical to disabled; recorded so that a paste restores the setting
    if all(not x.strip() for x in _negative_prompts(p)):
        state.log.info("the negative prompt is empty: nothing to delay")
        state.failed = True
        return state
    steps = int(p.steps)
    running = host.detect()
    label = f" [{running.label}, extension v{VERSION}]"  # the one log line per generation: host and version
    arch = architecture.of(getattr(p, "sd_model", None), running)
    if arch.refusal:
        state.log.error(f"{running.name}: {arch.refusal}; negative prompt applied as usual{label}")
        state.failed = True
        return state
    state.architecture = arch
    state.never = settings.delay >= steps  # also when a scheduler runs more steps than asked (DDIM at 30: 31)
    if settings.auto and not arch.auto:
        # the infotext keeps the auto keys (a paste asks for the same) and records the steps actually used
        state.settings = settings = replace(settings, auto=False)
        batch = max(int(getattr(p, "batch_size", 1) or 1), 1)
        p.extra_generation_params[STEPS_KEY] = " ".join([str(min(settings.delay, steps))] * batch)
        state.log.warning(
            f"auto-detect is not available for {arch.name} models: using the fixed delay "
            f"{given.describe(steps) if given.percent else settings.delay}" + label
        )
        return state
    if settings.auto:
        window = f"{settings.auto_min}-{settings.auto_max}"
        if low.percent or high.percent:
            window = f"{low}-{high}, steps {window}"
        state.log.info(
            f"negative prompt from the detected critical step (sensitivity {settings.sensitivity:g}, "
            f"steps {window} of {steps})" + label
        )
    elif settings.delay >= steps:
        shown = f"{given} (step {settings.delay})" if given.percent else str(given)
        state.log.warning(
            f"delay {shown} is not below the {steps} sampling steps: the negative prompt is never applied" + label
        )
    else:
        where = f"from {given.describe(steps)}"
        if _is_img2img(p):
            where = f"from the noise level of {given.describe(steps)} (img2img: its first step at or below it)"
        elif getattr(p, "enable_hr", False):
            where += "; hires pass: from its first step at or below that step's noise level"
        state.log.info("negative prompt " + where + label)
    return state


DYNAMIC_CLIP_SKIP = (
    "reForge's dynamic Clip skip encodes the negative prompt anew during sampling, which is not supported"
)


def before_sampling(p: Any) -> None:
    """Prepare one sampling pass (first pass, hires pass, every batch of a batch count): the delay, then the
    analysis sheet, which reads its marks against the delay's reference schedule when there is one."""
    _prepare_delay(p)
    state: GenerationState | None = getattr(p, STATE_ATTR, None)
    live = state is not None and state.prepared and not state.failed  # else its seam is an earlier pass's
    sheet.before_sampling(p, getattr(state, "reference", None), state.seam if live else None)


def _prepare_delay(p: Any) -> None:
    state: GenerationState | None = getattr(p, STATE_ATTR, None)
    if state is None or state.failed or not state.settings.active:
        return
    try:
        from modules import shared

        if getattr(p, "dynamic_clip_skip_sets", None):  # set by reForge's setup_conds, after Script.process
            state.failed = True
            state.log.error(f"{DYNAMIC_CLIP_SKIP}; negative prompt applied as usual [{host.detect().label}]")
            return
        is_hires = bool(getattr(p, "is_hr_pass", False))
        sampler = getattr(p, "sampler", None)
        state.prepared = False
        state.empty = state.empty_key = state.empty_identity = None
        state.pattern_owner = state.detector = state.starts = state.seam = None
        state.by_level, state.step_equiv, state.latched = False, 0, 0
        state.counting = not is_hires and not _is_img2img(p)
        if not is_hires or state.reference is None:
            state.reference = _reference(state, p, sampler, is_hires)
        running = host.detect()
        timesteps = running.sigma_is_timestep and levels.is_timestep_sampler(sampler)
        state.scale = levels.timestep_scale(shared.sd_model) if timesteps else None
        if state.settings.auto:
            _setup_auto_pass(state, is_hires, int(getattr(p, "batch_size", 1) or 1))
            # the seam measures (first pass) and carries switched images where rows cannot be mixed (any pass)
            carries = not getattr(state.architecture, "token_chunks", True)
            if running.is_fork and (state.detector is not None or carries):
                _install_seam(state, p, running, joint=carries)
        state.size = (int(p.hr_upscale_to_x), int(p.hr_upscale_to_y)) if is_hires else (int(p.width), int(p.height))
        # the distilled CFG scale this pass encodes its negative with (Forge, Neo; None in A1111)
        state.distilled = getattr(p, "hr_distilled_cfg" if is_hires else "distilled_cfg_scale", None)
        state.prepared = True
    except Exception as exc:
        state.failed = True
        message = f"could not prepare this sampling pass ({exc}); negative prompt applied as usual"
        state.log.error(message, exc_info=True)


def _reference(state: GenerationState, p: Any, sampler: Any, is_hires: bool) -> Reference | None:
    """The txt2img levels of the first pass's sampler and schedule; None (warned once) if unreadable."""
    from modules import shared

    try:
        return levels.first_pass_reference(p, sampler, shared.sd_model, is_hires)
    except Exception as exc:
        state.log.warning(
            f"cannot read the noise schedule of sampler {getattr(p, 'sampler_name', '?')!r} ({exc}); "
            "counting its steps with the WebUI's step counter instead"
        )
        return None


def _setup_auto_pass(state: GenerationState, is_hires: bool, batch: int) -> None:
    """Auto mode: the first pass detects per image; the hires pass reuses each image's noise level."""
    settings = state.settings
    if is_hires:
        state.starts = list(state.auto_steps or [settings.delay] * batch)
        return
    state.detector = AlignmentDetector(batch, threshold_for(settings.sensitivity), settings.auto_min, settings.auto_max)
    state.auto_steps = None


def _install_seam(state: GenerationState, p: Any, running: host.Host, joint: bool) -> None:
    """Auto mode in a fork: measure in its post-CFG hook (``forge_auto``); the fixed delay if it has none."""
    try:
        state.seam = forge_auto.install(p, running, joint=joint)
    except Exception as exc:
        state.detector = None
        state.log.warning(
            f"auto-detection needs {running.name}'s post-CFG hook, which is not available here ({exc}); "
            f"using the fixed delay {state.settings.delay}"
        )


def _sampler_pattern(denoiser: Any, p: Any) -> EvalPattern:
    sampler = getattr(denoiser, "sampler", None)
    return pattern_for_sampler(levels.sampler_name(sampler, p), levels.funcname(sampler))


def _equivalent_step(state: GenerationState, p: Any, params: Any, denoiser: Any) -> int:
    """The txt2img step this evaluation stands for (see ``schedule``); all evaluations of a step alike."""
    pattern = state.pattern
    eval_index = int(getattr(denoiser, "step", 0))
    counter = int(params.sampling_step)
    if pattern is not EvalPattern.NO_STEPS and not state.by_level:
        step = step_of_evaluation(eval_index, pattern)
        if consistent_with_counter(step, counter, pattern):
            if state.counting or state.reference is None:
                return step
            if starts_step(eval_index, pattern):
                state.step_equiv = state.reference.equivalent_step(levels.level_of(params.sigma, state.scale))
            return state.step_equiv
        state.by_level = True
        state.log.warning(
            f"sampler {getattr(p, 'sampler_name', '?')!r} evaluates the model in an unexpected order; "
            "its noise level decides for the rest of this pass"
        )
    if state.reference is None:
        return 0 if eval_index == 0 else counter + 1  # the WebUI's counter, corrected for its lag
    if pattern is EvalPattern.NO_STEPS and state.settings.delay < state.reference.steps:
        state.log.info(
            f"sampler {getattr(p, 'sampler_name', '?')!r} has no fixed step structure: the negative prompt starts "
            f"at its first evaluation at or below sigma {state.reference.levels[state.settings.delay]:.4g} "
            f"(the level of step {state.settings.delay})"
        )
    state.latched = max(state.latched, state.reference.equivalent_step(levels.level_of(params.sigma, state.scale)))
    return state.latched


def _reference_steps(state: GenerationState) -> int:
    return state.reference.steps if state.reference else MAX_DELAY


def _set_auto_steps(state: GenerationState, p: Any, steps: list[int]) -> None:
    """The per-image switch steps the hires pass reuses and the infotext records."""
    state.auto_steps = steps
    p.extra_generation_params[STEPS_KEY] = " ".join(str(x) for x in steps)


def _record_auto_steps(state: GenerationState, p: Any) -> None:
    _set_auto_steps(state, p, state.detector.finish(_reference_steps(state)))


def _auto_failed(state: GenerationState, p: Any, exc: Exception) -> None:
    """Fall back to the fixed delay for the images not switched yet; images that switched keep their step (going
    back to the empty prompt would give neither result).  The infotext and the hires pass get those steps."""
    detector, state.detector = state.detector, None
    delay = state.settings.delay
    switched = [] if detector is None else detector.switch_at
    kept = ""
    if any(at is not None for at in switched):
        state.starts = [delay if at is None else at for at in switched]
        kept = " for the images not switched yet"
    total = _reference_steps(state)
    _set_auto_steps(state, p, [min(total, at) for at in state.starts or [delay] * (detector.batch if detector else 1)])
    state.log.warning(f"auto-detection failed ({exc}); using the fixed delay {delay}{kept}")


def _carry(state: GenerationState, p: Any, params: Any, uses_negative: list[bool], step: int) -> bool:
    """Images of the batch differ (auto mode) but the empty prompt and the negative cannot share a batch (their token
    lengths differ, Forge Neo's flow engines): the batch keeps the empty prompt and the seam gives the images that
    use the negative their share (``forge_auto``). False when nothing can: then every image takes the negative prompt
    from this step on (warned once; the first pass's infotext records the steps used)."""
    rows = [i for i, used in enumerate(uses_negative) if used]
    if state.seam is not None:
        state.seam.carry(rows, params.text_uncond, failed=lambda exc: _carry_failed(state, p, exc))
        return True
    starts = [at if used else step for used, at in zip(uses_negative, _starts(state, uses_negative), strict=True)]
    state.detector, state.starts = None, starts
    if not getattr(p, "is_hr_pass", False):
        _set_auto_steps(state, p, starts)
    state.log.warning(
        f"the images of this batch cannot take the negative prompt at different steps here: all take it from "
        f"step {step} [{host.detect().label}]"
    )
    return False


def _starts(state: GenerationState, uses_negative: list[bool]) -> list[int]:
    if state.starts is not None:
        return list(state.starts)
    if state.detector is not None:
        return state.detector.finish(_reference_steps(state))
    return [state.settings.delay] * len(uses_negative)


def _carry_failed(state: GenerationState, p: Any, exc: Exception) -> None:
    """The seam could not give carried images their negative: stop carrying (the next evaluation of the mixed phase
    switches the whole batch, ``_carry``); a detection under way ends as in ``_auto_failed``."""
    state.seam = None
    if state.detector is not None:
        _auto_failed(state, p, exc)
    else:
        state.log.warning(f"could not apply the negative prompt to the switched images alone ({exc})")


def _uses_negative(state: GenerationState, p: Any, params: Any, step: int) -> list[bool]:
    """Per image of the batch: does this step use the real negative prompt? Sets up auto mode's probe."""
    detector: AlignmentDetector | None = state.detector
    if detector is not None:
        try:
            if detector.needs(step):
                images = detector.probing(step)
                if images and state.seam is not None:
                    state.seam.expect(
                        forge_auto.Expected(
                            detector,
                            step,
                            images,
                            params.text_uncond,
                            switched=lambda: _record_auto_steps(state, p),
                            failed=lambda exc: _auto_failed(state, p, exc),
                        )
                    )
                elif images:
                    _HANDOFF.append((state, p, probe.prepare(params, detector, step, images)))
                _record_auto_steps(state, p)
            return detector.uses_negative(step)
        except Exception as exc:
            _auto_failed(state, p, exc)
    if state.starts is not None:
        return [step >= start for start in state.starts]
    return [step >= state.settings.delay and not state.never]


# auto mode's hand-off from on_cfg_denoiser to on_cfg_denoised of the same evaluation (at most one entry)
_HANDOFF: list[tuple[GenerationState, Any, probe.Probe]] = []


def on_cfg_denoised(params: Any) -> None:
    """``script_callbacks.on_cfg_denoised`` hook: auto mode's measurement after the model call (and the analysis)."""
    sheet.snapshot(params.x)
    found = None
    if _HANDOFF:
        state, p, pending = _HANDOFF.pop()
        if state.failed or state.detector is not pending.detector:
            probe.release(pending)
        else:
            found = pending
            try:
                if probe.run(pending, params.x):
                    _record_auto_steps(state, p)
            except Exception as exc:  # never break a generation
                _auto_failed(state, p, exc)
    sheet.measured(found)
    sheet.after_model(params.x)


def finish_generation(p: Any, processed: Any) -> None:
    """``Script.postprocess``: the analysis sheets after the images."""
    sheet.finish(p, processed)


def on_cfg_after_cfg(params: Any) -> None:
    """``script_callbacks.on_cfg_after_cfg`` hook: the analysis keeps the guided result."""
    sheet.after_cfg(params)


def on_cfg_denoiser(params: Any) -> None:
    """``script_callbacks.on_cfg_denoiser`` hook: use the empty negative before the start step."""
    while _HANDOFF:  # an evaluation that never reached on_cfg_denoised (interrupted, or a sampler that skips it)
        probe.release(_HANDOFF.pop()[2])
    p = getattr(getattr(params, "denoiser", None), "p", None)
    negative = params.text_uncond
    uses = _swap(params, p)
    sheet.before_model(params, p, negative, uses)


def _swap(params: Any, p: Any) -> list[bool] | None:
    """Give the images that are before their start step the empty prompt; returns which images use the real
    negative at this evaluation (None: all of them, as the WebUI set it)."""
    denoiser = params.denoiser
    state: GenerationState | None = getattr(p, STATE_ATTR, None)
    if state is None or state.failed or not state.prepared:
        return None
    if state.seam is not None:
        missed = state.seam.pending
        if missed is not None:  # the previous evaluation never reached the post-CFG hook: this sampler bypasses it
            reason = RuntimeError(f"{host.detect().name} did not run its post-CFG hook for this sampler")
            if missed.carried:
                _carry_failed(state, p, reason)
            elif missed.detector is not None and missed.detector is state.detector:
                _auto_failed(state, p, reason)
        if state.seam is not None:
            state.seam.expect(None)
    if params.text_uncond is None:  # no unconditional branch (CFG scale 1 in the forks): nothing to delay
        state.log.info("this evaluation has no negative conditioning (CFG scale 1?): nothing to delay")
        return None
    try:
        if state.pattern_owner is not denoiser:
            state.pattern_owner = denoiser
            state.pattern = _sampler_pattern(denoiser, p)
        step = _equivalent_step(state, p, params, denoiser)
        uses_negative = _uses_negative(state, p, params, step)
        if all(uses_negative):
            return uses_negative
        from modules import shared

        model = shared.sd_model
        if state.empty is None or state.empty_identity != empty_cond.identity(model):
            # first delayed evaluation of the pass, or the refiner loaded other weights mid-pass
            state.empty_identity = empty_cond.identity(model)
            state.empty_key, state.empty = empty_cond.encode_empty(model, *state.size, distilled=state.distilled)
        chunks = getattr(state.architecture, "token_chunks", True)
        empty = empty_cond.fitted.get(state.empty_key, state.empty, params.text_uncond, chunks)
        if any(uses_negative):
            if mixable(empty, params.text_uncond):
                empty = mix_rows(empty, params.text_uncond, uses_negative)
            elif not _carry(state, p, params, uses_negative, step):
                return None  # the whole batch takes the negative prompt from here
        params.text_uncond = empty
        if _HANDOFF and _HANDOFF[-1][0] is state:
            _HANDOFF[-1][2].sent = empty  # the measurement checks that no later callback replaced it
        return uses_negative
    except UnsupportedConditioning as exc:
        state.failed = True
        state.log.error(f"unsupported model or conditioning ({exc}); negative prompt applied as usual")
    except Exception as exc:
        state.failed = True
        state.log.error(f"internal error ({exc}); negative prompt applied as usual for this generation", exc_info=True)
    return None
