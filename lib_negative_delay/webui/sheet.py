"""The analysis sheet in the WebUI: recording during sampling, drawing after the generation.

Opt-in per generation (the panel's "Show when the negative prompt acts", the 8th API argument); not in the infotext.
At the first denoiser evaluation of every step of every pass, for every image:

- ``before_model`` (from ``on_cfg_denoiser``, after the delay chose each image's negative for the step) notes the
  real negative and which images use it;
- AUTOMATIC1111: ``after_model`` (from ``on_cfg_denoised``) takes the model's output for the uncond row the image
  used, and gets the other one (the empty prompt where the image used the negative, the negative where it used the
  empty prompt) from one extra model call of those rows, or from auto mode's own measurement of the step where there
  is one;
- the forks (no ``on_cfg_denoised``): ``after_post_cfg`` does the same in their post-CFG function
  (``forge_auto.Seam``, the delay's own when auto mode installed one), on their x0 predictions; the extra call there
  covers the batch's rows;
- ``after_cfg`` (from ``on_cfg_after_cfg``, after an inpainting mask's blend) keeps the guided result's x0, the
  picture the step predicts.

The WebUI's rows are never touched, so the image is the one the same settings give with the analysis off.
``finish`` (from ``Script.postprocess``) decodes the shown steps with the live-preview method of Settings, draws one
sheet per image (``analysis.render``), appends the sheets to the gallery after the images, and saves them with the
grids when Settings ask for it. A selected script (X/Y/Z plot, prompt matrix…) and models auto-detect does not run on
get no sheet, with one line.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

import torch

from lib_negative_delay import analysis
from lib_negative_delay.conditioning import mix_rows, mixable, rows_of, take_rows
from lib_negative_delay.detector import threshold_for
from lib_negative_delay.schedule import EvalPattern, pattern_for_sampler, step_of_evaluation
from lib_negative_delay.settings import Delay, OnceLog, parse_enabled
from lib_negative_delay.webui import architecture, empty_cond, forge_auto, host, levels, options, probe

SHEET_ATTR = "negative_prompt_delay_sheet"
OVERRIDE_ANALYSIS = "negative_prompt_delay_analysis"


@dataclass
class SheetState:
    """The analysis of one generation, on ``p``."""

    threshold: float
    log: OnceLog
    records: dict[tuple[int, int], list[analysis.PassRecord]] = field(default_factory=dict)  # (iteration, pass)
    current: list[analysis.PassRecord] | None = None
    reference: Any = None  # schedule.Reference of the first pass
    scale: Any = None
    last_step: int = -1
    size: tuple = (0, 0)
    empty: Any = None  # (checkpoint identity, key, encoded "") of this pass
    pattern: Any = None  # schedule.EvalPattern of the sampler that owns ``pattern_owner`` (a denoiser)
    pattern_owner: Any = None
    failed: bool = False
    fork: bool = False  # recorded from the fork's post-CFG function (``after_post_cfg``)
    chunks: bool = True  # the empty prompt may repeat its 75-token chunk to the negative's length (architecture)
    distilled: Any = None  # the pass's distilled CFG scale the forks encode a negative with (None in A1111)


def start(p: Any, value: object, sensitivity: float, log: OnceLog) -> SheetState | None:
    """Set up the analysis of one generation; None (one line where it was asked for) when it does not run.
    ``sensitivity``: the panel's, as the delay settings resolved it (the curve's threshold)."""
    value = getattr(p, OVERRIDE_ANALYSIS, value)
    setattr(p, SHEET_ATTR, None)
    asked = parse_enabled(value, "analysis", log) if value not in (None, "") else False
    if not asked:
        return None
    script_args = getattr(p, "script_args", None) or ()
    if script_args and isinstance(script_args[0], int) and script_args[0] > 0:
        log.info("no analysis sheet while a script (X/Y/Z plot, prompt matrix, ...) runs the generation")
        return None
    running = host.detect()
    arch = architecture.of(getattr(p, "sd_model", None), running)
    if arch.refusal or not arch.auto:
        log.warning(f"the analysis sheet is not available for {arch.name} models in {running.name}; no sheet")
        return None
    state = SheetState(threshold=threshold_for(sensitivity), log=log, fork=running.is_fork, chunks=arch.token_chunks)
    setattr(p, SHEET_ATTR, state)
    return state


def before_sampling(p: Any, reference: Any = None, seam: forge_auto.Seam | None = None) -> None:
    """A new sampling pass (first pass, hires pass, every batch of a batch count). ``reference``: the delay's
    reference schedule of the first pass when it has one (read here otherwise); ``seam``: the delay's post-CFG seam
    of this pass in a fork, if it installed one (the sheet installs its own otherwise)."""
    state: SheetState | None = getattr(p, SHEET_ATTR, None)
    if state is None or state.failed:
        return
    from modules import shared

    hires = bool(getattr(p, "is_hr_pass", False))
    batch = max(int(getattr(p, "batch_size", 1) or 1), 1)
    running = host.detect()
    if state.fork and not _attach(state, p, running, seam):
        return
    try:
        if state.reference is None:
            state.reference = reference or levels.first_pass_reference(
                p, getattr(p, "sampler", None), shared.sd_model, hires
            )
        timesteps = running.sigma_is_timestep and levels.is_timestep_sampler(getattr(p, "sampler", None))
        state.scale = levels.timestep_scale(shared.sd_model) if timesteps else None
    except Exception as exc:
        state.reference = None
        state.log.warning(f"analysis sheet: cannot read the noise schedule ({exc}); no 10/20/30 % marks")
    state.distilled = getattr(p, "hr_distilled_cfg" if hires else "distilled_cfg_scale", None)
    steps = _pass_steps(p, hires)
    if hires:
        title = f"hires pass, {steps} steps"
    elif getattr(p, "init_images", None) is not None:
        title = f"img2img, {steps} steps at denoising strength {float(getattr(p, 'denoising_strength', 0)):g}"
    else:
        title = f"txt2img, {steps} steps"
    key = (int(getattr(p, "iteration", 0) or 0), int(hires))
    state.current = state.records[key] = [analysis.PassRecord(title=title, steps=steps) for _ in range(batch)]
    state.last_step = -1
    state.empty = None
    state.size = (int(p.hr_upscale_to_x), int(p.hr_upscale_to_y)) if hires else (int(p.width), int(p.height))


def _attach(state: SheetState, p: Any, running: host.Host, seam: forge_auto.Seam | None) -> bool:
    """In a fork: record from this pass's post-CFG seam (the delay's, or one of the sheet's own); False (one line, no
    sheet) when the fork has no post-CFG hook to attach to."""
    try:
        if seam is None:
            seam = forge_auto.install(p, running, joint=not state.chunks)
        seam.recorder = after_post_cfg
        return True
    except Exception as exc:
        state.failed = True
        state.log.warning(f"the analysis sheet needs {running.name}'s post-CFG hook, which is not available ({exc})")
        return False


def _pass_steps(p: Any, hires: bool) -> int:
    if hires:
        return int(getattr(p, "hr_second_pass_steps", 0) or 0) or int(p.steps)
    if getattr(p, "init_images", None) is not None:
        from modules import sd_samplers_common

        return int(sd_samplers_common.setup_img2img_steps(p)[1]) + 1  # t_enc + 1 levels from the strength's
    return int(p.steps)


@dataclass
class _Pending:
    state: SheetState
    params: Any
    negative: Any  # the WebUI's uncond as it reached this extension (the real negative)
    uses: list[bool]  # per image: this step's uncond is the real negative
    step: int
    level: float
    before: torch.Tensor | None = None  # uncond rows of the output before auto mode wrote into them
    measured: dict = field(default_factory=dict)  # image -> auto mode's output of the negative at this step
    x_img: torch.Tensor | None = None  # the images' latents and levels at this evaluation (set once recorded)
    sigma: torch.Tensor | None = None
    recorded: bool = False  # the step's columns are in; ``after_cfg`` adds their x0


_PENDING: list[_Pending] = []


def before_model(params: Any, p: Any, negative: Any, uses: list[bool] | None) -> None:
    """Note the step's first evaluation (``uses`` None: every image has the WebUI's own negative)."""
    _PENDING.clear()
    state: SheetState | None = getattr(p, SHEET_ATTR, None)
    if state is None or state.failed or state.current is None or negative is None:
        return
    step = _step_of(state, params, p)
    if step <= state.last_step:
        return  # a later evaluation of a step already recorded (Heun, DPM2, ...)
    state.last_step = step
    batch = len(state.current)
    level = levels.level_of(params.sigma[-batch:], state.scale)
    uses = list(uses or [True])
    if len(uses) != batch:  # one flag for the whole batch (a fixed delay)
        uses = [all(uses)] * batch
    _PENDING.append(_Pending(state, params, negative, uses, step, level))


def _step_of(state: SheetState, params: Any, p: Any) -> int:
    """The step of the pass this evaluation belongs to, from the sampler's step structure (``schedule``); samplers
    without one by the WebUI's step counter, which lags one evaluation behind."""
    denoiser = params.denoiser
    if state.pattern_owner is not denoiser:
        sampler = getattr(denoiser, "sampler", None)
        state.pattern_owner = denoiser
        state.pattern = pattern_for_sampler(levels.sampler_name(sampler, p), levels.funcname(sampler))
    index = int(getattr(denoiser, "step", 0))
    if state.pattern is EvalPattern.NO_STEPS:
        return 0 if index == 0 else int(getattr(params, "sampling_step", 0)) + 1
    return step_of_evaluation(index, state.pattern)


def snapshot(x_out: torch.Tensor) -> None:
    """Before auto mode writes a switching image's negative output into its uncond row: keep the rows."""
    if _PENDING:
        batch = len(_PENDING[-1].uses)
        _PENDING[-1].before = x_out[-batch:].detach().clone()


def measured(found: probe.Probe | None) -> None:
    """Auto mode's output of the negative for the images it measured at this evaluation."""
    if _PENDING and found is not None and found.outputs:
        _PENDING[-1].measured = dict(found.outputs)


def after_model(x_out: torch.Tensor) -> None:
    """Record the step for every image (after auto mode's measurement, if any)."""
    if not _PENDING or _PENDING[-1].before is None:
        return
    pending = _PENDING[-1]
    state = pending.state
    try:
        _record(pending, x_out)
    except Exception as exc:
        _fail(state, exc)


def _record(pending: _Pending, x_out: torch.Tensor) -> None:
    state, params = pending.state, pending.params
    batch = len(pending.uses)
    total = int(params.x.shape[0])
    n_cond = total - batch
    if x_out.shape[0] != total or rows_of(params.text_uncond) != batch:
        raise ValueError(f"unexpected batch layout ({x_out.shape[0]} rows for {batch} images)")
    first = probe._first_cond_rows(params.x, n_cond, batch)
    uncond_rows = list(range(n_cond, total))
    if all(torch.equal(x_out[first[i]], pending.before[i]) for i in range(batch)):
        return  # the WebUI skipped the uncond at this step (Skip Early CFG, NGMS): nothing to compare, no column
    # the uncond each image used: auto mode may have switched some at this step (their row now holds the negative)
    used_negative = [u or (i in pending.measured and not torch.equal(x_out[n_cond + i], pending.before[i]))
                     for i, u in enumerate(pending.uses)]  # fmt: skip
    empty_out: list[torch.Tensor | None] = [None] * batch
    neg_out: list[torch.Tensor | None] = [None] * batch
    for i in range(batch):
        if pending.uses[i]:
            neg_out[i] = pending.before[i]
        else:
            empty_out[i] = pending.before[i]
            neg_out[i] = pending.measured.get(i)
    missing = [i for i in range(batch) if empty_out[i] is None or neg_out[i] is None]
    if missing:
        want_negative = [neg_out[i] is None for i in missing]
        cond = _conditioning(state, take_rows(pending.negative, missing), want_negative)
        if cond is None:
            raise ValueError("the empty prompt and the negative have different shapes")
        out = probe.evaluate(params, cond, [uncond_rows[i] for i in missing])
        for k, i in enumerate(missing):
            if want_negative[k]:
                neg_out[i] = out[k]
            else:
                empty_out[i] = out[k]
    x_img, sigma = params.x[uncond_rows], params.sigma[uncond_rows]
    to_x0 = params.denoiser.get_pred_x0
    pos = to_x0(x_img, x_out[first], sigma)
    empty_x0 = to_x0(x_img, torch.stack(empty_out), sigma)
    neg_x0 = to_x0(x_img, torch.stack(neg_out), sigma)
    _add_columns(pending, pos, empty_x0, neg_x0, used_negative)
    pending.x_img, pending.sigma = x_img, sigma  # for after_cfg


def _conditioning(state: SheetState, negative: Any, want_negative: list[bool]) -> Any:
    """Per row, the real negative (``negative``'s row) where ``want_negative``, else the empty prompt; None when the
    two cannot share one batch (their token lengths differ: Forge Neo's flow engines)."""
    if all(want_negative):
        return negative
    from modules import shared

    model = shared.sd_model
    if state.empty is None or state.empty[0] != empty_cond.identity(model):  # the refiner took over mid-pass
        encoded = empty_cond.encode_empty(model, *state.size, distilled=state.distilled)
        state.empty = (empty_cond.identity(model), *encoded)
    _, key, empty = state.empty
    empty = empty_cond.fitted.get(key, empty, negative, state.chunks)
    if not any(want_negative):
        return empty
    return mix_rows(empty, negative, want_negative) if mixable(empty, negative) else None


def _add_columns(pending: _Pending, pos: Any, empty_x0: Any, neg_x0: Any, used_negative: list[bool]) -> None:
    """The step's column for every image, from the x0 predictions of the prompt, the empty prompt and the negative."""
    state = pending.state
    cosines, change = analysis.measure(pos, empty_x0, neg_x0)
    reference_step = state.reference.equivalent_step(pending.level) if state.reference is not None else None
    for i, record in enumerate(state.current):
        record.columns.append(
            analysis.Column(
                step=pending.step,
                reference_step=reference_step,
                negative=used_negative[i],
                cosine=cosines[i],
                change=change[i].detach().float().cpu(),
            )
        )
    pending.recorded = True


def after_post_cfg(args: dict, negative: torch.Tensor | None, corrected: list, evaluate: Any) -> None:
    """The forks: record the step in their post-CFG function (``forge_auto.Seam.recorder``), from the x0 predictions
    it gets. ``negative``: the real negative's x0 for every row where the seam evaluated it (auto mode), ``corrected``:
    the rows the seam gave the negative's share (their batch row held the empty prompt), ``evaluate(cond)``: x0 of a
    conditioning (A1111 form, a row per image) in one extra call over the batch's rows."""
    if not _PENDING or _PENDING[-1].recorded:
        return
    pending = _PENDING[-1]
    dims = getattr(args.get("cond_denoised"), "ndim", 4)
    if dims != 4:  # a video (Wan's frames): nothing to draw as a column of pictures
        pending.state.failed = True
        _PENDING.clear()
        pending.state.log.warning(f"no analysis sheet for video latents ({dims} dimensions): the sheet draws images")
        return
    try:
        _record_fork(pending, args, negative, set(corrected), evaluate)
    except Exception as exc:
        _fail(pending.state, exc)


def _record_fork(pending: _Pending, args: dict, negative: Any, corrected: set, evaluate: Any) -> None:
    batch = len(pending.uses)
    pos, uncond = args["cond_denoised"], args["uncond_denoised"]
    if pos.shape[0] != batch or uncond.shape[0] != batch or rows_of(pending.negative) != batch:
        raise ValueError(f"unexpected batch layout ({pos.shape[0]} rows for {batch} images)")
    # the uncond row of the batch is the real negative where the image uses it, unless the seam carries it (module doc)
    in_batch = [used and i not in corrected for i, used in enumerate(pending.uses)]
    empty_x0 = [None if held else uncond[i] for i, held in enumerate(in_batch)]
    neg_x0 = [uncond[i] if held else None if negative is None else negative[i] for i, held in enumerate(in_batch)]
    missing = [i for i in range(batch) if empty_x0[i] is None or neg_x0[i] is None]
    kinds = sorted({neg_x0[i] is None for i in missing})  # True: the negative is missing
    state, real = pending.state, pending.negative
    mixed = [neg_x0[i] is None for i in range(batch)]
    cond = _conditioning(state, real, mixed) if len(kinds) == 2 else None
    if cond is not None:  # both kinds are missing and can share a batch: one call
        plans = [(mixed, cond)]
    else:
        plans = [([kind] * batch, _conditioning(state, real, [kind] * batch)) for kind in kinds]
    for plan, cond in plans:
        out = evaluate(cond)
        for i in missing:
            if plan[i] and neg_x0[i] is None:
                neg_x0[i] = out[i]
            elif not plan[i] and empty_x0[i] is None:
                empty_x0[i] = out[i]
    used_negative = [used or i in corrected for i, used in enumerate(pending.uses)]
    _add_columns(pending, pos, torch.stack(empty_x0).to(pos.dtype), torch.stack(neg_x0).to(pos.dtype), used_negative)


def _fail(state: SheetState, exc: Exception) -> None:
    state.failed = True
    _PENDING.clear()
    state.log.error(f"analysis sheet failed ({exc}); the images are not affected", exc_info=True)


def after_cfg(params: Any) -> None:
    """``on_cfg_after_cfg``: the guided result of the recorded evaluation, as x0 (the forks hand it as x0 already)."""
    if not _PENDING or not _PENDING[-1].recorded:
        return
    pending = _PENDING.pop()
    try:
        x0 = params.x
        if pending.x_img is not None:
            x0 = pending.params.denoiser.get_pred_x0(pending.x_img, params.x, pending.sigma)
        for i, record in enumerate(pending.state.current):
            record.columns[-1].x0 = x0[i].detach().float().cpu()
    except Exception as exc:
        _fail(pending.state, exc)


def _marks(state: SheetState, record: analysis.PassRecord) -> dict[str, int]:
    """Per share of the first pass's schedule: the first step of this pass at or below that step's level."""
    marks = {}
    total = state.reference.steps if state.reference is not None else record.steps
    for share in analysis.SHARES:
        target = Delay(share, percent=True).steps(total)
        if state.reference is None:
            found = next((c.step for c in record.columns if c.step >= target), None)
        else:
            found = next((c.step for c in record.columns if (c.reference_step or 0) >= target), None)
        if found is not None:
            marks[f"{share}%"] = found
    return marks


def finish(p: Any, processed: Any) -> None:
    """Draw the sheets, append them to the gallery after the images, save them with the grids if Settings ask."""
    state: SheetState | None = getattr(p, SHEET_ATTR, None)
    setattr(p, SHEET_ATTR, None)
    if state is None or state.failed or not state.records:
        return
    try:
        sheets = _draw(state, p)
    except Exception as exc:
        _fail(state, exc)
        return
    if not sheets:
        state.log.info("no analysis sheet: no step of this generation evaluated the negative prompt (CFG scale 1?)")
    texts = getattr(processed, "infotexts", None)
    first = int(getattr(processed, "index_of_first_image", 0) or 0)  # 1 when the WebUI put its grid in front
    with_texts = []
    for sheet, (number, caption) in sheets:
        own = texts[first + number - 1] if isinstance(texts, list) and first + number - 1 < len(texts) else ""
        info = f"{own}, {caption}" if own else caption
        processed.images.append(sheet)
        if isinstance(texts, list):
            texts.append(info)
        with_texts.append((sheet, info))
    if options.save_sheets():
        _save(p, with_texts)


SHEET_KEY = "Negative delay sheet"


def _caption(number: int, records: list[analysis.PassRecord]) -> str:
    """The sheet's infotext entry, after its image's own parameters (so "Send to" and PNG Info give the image's
    settings): ``Negative delay sheet: "image 2: negative prompt from step 3; hires pass: from step 0"``."""
    parts = []
    for record in records:
        step = record.switch_step()
        where = "not applied" if step is None else f"from step {step}"
        parts.append(where if not parts else f"{record.title.split(',')[0]}: {where}")
    return f"{SHEET_KEY}: " + json.dumps(f"image {number}: negative prompt " + "; ".join(parts))


def _draw(state: SheetState, p: Any) -> list[tuple[Any, tuple[int, str]]]:
    sheets = []
    batch_size = max(int(getattr(p, "batch_size", 1) or 1), 1)
    iterations = sorted({it for it, _ in state.records})
    for iteration in iterations:
        for i in range(batch_size):
            sections, shown_records = [], []
            number = iteration * batch_size + i + 1
            for hires in (0, 1):
                records = state.records.get((iteration, hires))
                if not records or i >= len(records) or not records[i].columns:
                    continue
                record = records[i]
                record.marks = _marks(state, record)
                shown = [c for c in analysis.pick_columns(record.columns, record.switch_step()) if c.x0 is not None]
                pictures = {c.step: _picture(_decode(c.x0)) for c in shown}
                prompts = getattr(p, "all_prompts", None) or [getattr(p, "prompt", "")]
                prompt = str(prompts[min(number - 1, len(prompts) - 1)])
                sections.append(analysis.render(record, pictures, state.threshold, f"Image {number}: {prompt:.60}"))
                shown_records.append(record)
            if sections:
                sheets.append((analysis.stack(sections), (number, _caption(number, shown_records))))
    return sheets


def _decode(x0: torch.Tensor) -> torch.Tensor:
    """One latent as a [3, H, W] picture in [-1, 1], with the live-preview method of Settings. One at a time: Forge
    Classic's default method (RGB) decodes only the first latent it is given. On the WebUI's device: A1111's full VAE
    does not move its input there."""
    from modules import devices, sd_samplers_common

    with torch.no_grad():
        return sd_samplers_common.samples_to_images_tensor(x0[None].to(devices.device))[0]


def _picture(image: torch.Tensor) -> Any:
    from PIL import Image

    image = image.float().clamp(-1, 1)
    if image.shape[0] < 3:
        image = image[:1].expand(3, -1, -1)
    pixels = ((image[:3] + 1) * 127.5).round().byte().permute(1, 2, 0).cpu().numpy()
    return Image.fromarray(pixels)


def _save(p: Any, sheets: list[tuple[Any, str]]) -> None:
    from modules import images, shared

    if not getattr(shared.opts, "grid_save", False) or getattr(p, "do_not_save_grid", False):
        return  # as the WebUI's own grids (the API sets do_not_save_grid unless save_images is asked)
    for sheet, info in sheets:
        images.save_image(
            sheet, p.outpath_grids, "negative_delay_sheet", extension=shared.opts.grid_format, info=info, p=p,
            grid=True,
        )  # fmt: skip
