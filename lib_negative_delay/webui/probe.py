"""Auto mode's measurement inside one CFG-denoiser evaluation.

``prepare`` runs in ``on_cfg_denoiser`` (before the model call): it notes, for the images still undecided,
where their positive and uncond rows sit in the batch and what their real negative conditioning is.
``run`` runs in ``on_cfg_denoised`` (after the model call, before the CFG combine): it takes the real negative's
output for those images, measures the alignment, and writes the negative's output into the uncond rows of images
that switch, in place, so they use the negative at this very step.

Where the negative's output comes from: ``prepare`` lends the sampler's model wrapper (``denoiser.model_wrap``) a
one-evaluation stand-in (``Folded``) that appends the probed images' negative rows to the WebUI's own model call
when that call holds the whole batch and the negative has its token length; the WebUI gets its own rows back and
never sees the others. Otherwise (the WebUI splits the batch: ``batch_cond_uncond`` off, a negative of another
length) ``run`` evaluates them in a call of their own. A separate call of a few rows costs nearly as much wall time
as the whole batch's on a small or call-bound model, which is what folding saves. A wrapper another extension put
around the sampler's model gets nothing lent (it may compute more than one call), and a joined call that fails (a
UNet hook that wants its own batch size) is made again without the extra rows.

Layout of the WebUI's batch (``CFGDenoiser.forward``): the positive rows of every image (several per image with
AND), then one uncond row per image.

Other extensions' ``cfg_denoiser`` callbacks may run after ours on the same parameters object: ``run`` reads the
rows, the positive (for the WebUI's padding) and the latents from it as the model got them, and gives up when a
later callback replaced the uncond we set (it would change the negative too, which the measurement cannot see).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from lib_negative_delay.conditioning import Cond, UnsupportedConditioning, crossattn, rows_of, take_rows
from lib_negative_delay.detector import AlignmentDetector, alignment


@dataclass
class Probe:
    """What ``run`` needs from the evaluation that ``prepare`` saw."""

    detector: AlignmentDetector
    step: int
    images: list[int]  # undecided images, probed at this evaluation
    uncond_rows: list[int]  # each one's uncond row
    total_rows: int
    params: Any  # the evaluation's CFGDenoiserParams: read again after every callback has run
    negative: Cond  # the real negative conditioning of those images (unpadded)
    sent: Cond | None = None  # the uncond our callback gave the model (set after the swap)
    fold: Folded | None = None  # the wrapper lent to the sampler for this evaluation
    outputs: dict | None = None  # image -> the negative's output measured at this evaluation (set by ``run``)


class Folded(torch.nn.Module):
    """The sampler's model wrapper for one evaluation: the call that holds the whole batch gets ``extra`` rows
    appended (built by ``extra(x, sigma, cond)``, None when they cannot join) and returns only its own rows; the
    appended rows' output is kept in ``out``. Every other attribute is the wrapped model's. (A module, because the
    WebUI's denoiser is one and keeps the wrapper as a child module.)"""

    def __init__(self, inner: torch.nn.Module, extra: Any) -> None:
        super().__init__()
        self.inner = inner
        self.extra = extra
        self.out: torch.Tensor | None = None

    def __getattr__(self, name: str) -> Any:
        try:
            return super().__getattr__(name)
        except AttributeError:
            return getattr(super().__getattr__("inner"), name)

    def forward(self, x: torch.Tensor, sigma: torch.Tensor, **kwargs: Any) -> torch.Tensor:
        joined = None if self.out is not None else self.extra(x, sigma, kwargs.get("cond"))
        if joined is None:
            return self.inner(x, sigma, **kwargs)
        more_x, more_sigma, cond = joined
        try:
            out = self.inner(torch.cat([x, more_x]), torch.cat([sigma, more_sigma]), **{**kwargs, "cond": cond})
        except Exception:  # e.g. another extension's UNet hook that wants its own batch size: the WebUI's call alone
            self.extra = lambda *args: None
            return self.inner(x, sigma, **kwargs)
        self.out = out[x.shape[0] :]
        return out[: x.shape[0]]


def _joined(call: dict, more: dict) -> dict | None:
    """The two condition dicts' rows one after the other, key by key; None unless they have the same keys and
    shapes past the rows."""
    if not isinstance(call, dict) or set(call) != set(more):
        return None
    out = {}
    for key, a in call.items():
        b = more[key]
        listed = isinstance(a, list)
        if listed != isinstance(b, list) or (listed and (len(a) != 1 or len(b) != 1)):
            return None
        ta, tb = (a[0], b[0]) if listed else (a, b)
        if not (torch.is_tensor(ta) and torch.is_tensor(tb)) or ta.shape[1:] != tb.shape[1:]:
            return None
        both = torch.cat([ta, tb.to(ta.dtype)])
        out[key] = [both] if listed else both
    return out


def _first_cond_rows(x_in: torch.Tensor, n_cond: int, batch: int) -> list[int]:
    """Row of each image's first positive: the batch repeats image i's latent once per AND sub-prompt."""
    if n_cond == batch:
        return list(range(batch))
    rows = []
    for i in range(batch):
        own = x_in[n_cond + i]
        found = next((r for r in range(n_cond) if torch.equal(x_in[r], own)), None)
        if found is None:
            raise UnsupportedConditioning("cannot find an image's positive rows in the batch")
        rows.append(found)
    return rows


def _padded_negative(denoiser: Any, cond: Cond, negative: Cond) -> Cond:
    """The negative as the WebUI would pad it against the positive (options pad_cond_uncond[_v0])."""
    from modules import shared

    if crossattn(cond).shape[1] != crossattn(negative).shape[1]:
        if getattr(shared.opts, "pad_cond_uncond_v0", False):
            return denoiser.pad_cond_uncond_v0(cond, negative)[1]
        if getattr(shared.opts, "pad_cond_uncond", False):
            return denoiser.pad_cond_uncond(cond, negative)[1]
    return negative


def _check_layout(params: Any, batch: int) -> tuple[int, int]:
    """(total rows, positive rows) of the evaluation; raises unless it has the WebUI's layout for ``batch``."""
    total = int(params.x.shape[0])
    n_cond = total - batch
    if n_cond != rows_of(params.text_cond) or batch != rows_of(params.text_uncond):
        raise UnsupportedConditioning(f"unexpected batch layout ({total} rows for {batch} images)")
    return total, n_cond


def prepare(params: Any, detector: AlignmentDetector, step: int, images: list[int]) -> Probe:
    """Note the rows of ``images`` in this evaluation (``params``: the WebUI's CFGDenoiserParams)."""
    negative = params.text_uncond
    if rows_of(negative) != detector.batch:
        raise UnsupportedConditioning(f"unexpected batch layout ({rows_of(negative)} uncond rows)")
    total, n_cond = _check_layout(params, detector.batch)
    _first_cond_rows(params.x, n_cond, detector.batch)
    found = Probe(
        detector=detector,
        step=step,
        images=images,
        uncond_rows=[n_cond + i for i in images],
        total_rows=total,
        params=params,
        negative=take_rows(negative, images),
    )
    _lend_fold(found)
    return found


def _lend_fold(found: Probe) -> None:
    """Lend the sampler's model wrapper a ``Folded`` for this evaluation (A1111's denoisers keep it in
    ``model_wrap``). Only while it is still the sampler's own: a wrapper another extension put around it may compute
    something else than one call (an ensemble, a second input), and then the negative gets a call of its own."""
    denoiser = found.params.denoiser
    inner = getattr(denoiser, "model_wrap", None)
    own = getattr(getattr(denoiser, "sampler", None), "model_wrap", None)
    if inner is None or inner is not own or not isinstance(inner, torch.nn.Module):
        return

    def extra(x: torch.Tensor, sigma: torch.Tensor, cond: Any) -> tuple | None:
        params = found.params
        if x.shape[0] != found.total_rows or found.sent is None or params.text_uncond is not found.sent:
            return None
        rows = found.uncond_rows
        negative = _padded_negative(denoiser, params.text_cond, found.negative)
        joined = _joined(cond, _condition(negative, params.image_cond[rows]))
        return None if joined is None else (x[rows], sigma[rows], joined)

    try:
        denoiser.model_wrap = fold = Folded(inner, extra)
    except Exception:  # a denoiser that will not take it: the negative gets a call of its own
        return
    found.fold = fold


def release(found: Probe) -> None:
    """Give the sampler its own model wrapper back (after the evaluation, or when it never reached ``run``)."""
    fold, found.fold = found.fold, None
    denoiser = found.params.denoiser
    if fold is not None and getattr(denoiser, "model_wrap", None) is fold:
        denoiser.model_wrap = fold.inner


def _condition(cond: Cond, image_cond: torch.Tensor) -> dict:
    """The model's condition dict, built as ``CFGDenoiser.forward``'s ``make_condition_dict`` does."""
    from modules import shared

    if getattr(getattr(shared.sd_model, "model", None), "conditioning_key", None) == "crossattn-adm":
        return {"c_crossattn": [cond], "c_adm": image_cond}
    if isinstance(cond, dict):
        return {**cond, "c_concat": [image_cond]}
    return {"c_crossattn": [cond], "c_concat": [image_cond]}


def evaluate(params: Any, cond: Cond, rows: list[int]) -> torch.Tensor:
    """The model's output for ``rows`` of the evaluation (their latents, levels and image conditioning) under
    ``cond`` (one row each, padded against the positive as the WebUI pads), in a call of its own."""
    cond = _padded_negative(params.denoiser, params.text_cond, cond)
    with torch.no_grad():
        return params.denoiser.inner_model(
            params.x[rows], params.sigma[rows], cond=_condition(cond, params.image_cond[rows])
        )


def run(probe: Probe, x_out: torch.Tensor) -> list[int]:
    """Measure, decide, and give the switching images their negative output at this step; returns them."""
    params = probe.params
    # a wrapper another extension put around ours after our callback: what it computes is not what we folded
    fold = probe.fold
    folded = fold.out if fold is not None and getattr(params.denoiser, "model_wrap", None) is fold else None
    release(probe)
    if x_out.shape[0] != probe.total_rows:
        raise UnsupportedConditioning(f"unexpected denoiser output ({x_out.shape[0]} rows, {probe.total_rows} sent)")
    # replaced, not compared: a re-weighting of the negative leaves the empty prompt's rows as they were
    if probe.sent is not None and params.text_uncond is not probe.sent:
        raise UnsupportedConditioning(
            "another extension's cfg_denoiser callback changed the negative conditioning after this extension's, "
            "so the negative the model would get cannot be measured (Settings > Callback order: put it first)"
        )
    total, n_cond = _check_layout(params, probe.detector.batch)
    if total != probe.total_rows:
        raise UnsupportedConditioning(f"another extension changed the batch ({total} rows, {probe.total_rows} seen)")
    first_rows = _first_cond_rows(params.x, n_cond, probe.detector.batch)  # as the model got them (reordered?)
    # rows whose uncond was skipped this step (NGMS, skip early CFG) hold a copy of the positive: wait
    pairs = [(first_rows[i], u) for i, u in zip(probe.images, probe.uncond_rows, strict=True)]
    live = [j for j, (c, u) in enumerate(pairs) if not torch.equal(x_out[c], x_out[u])]
    if not live:
        return []
    cond_rows = [pairs[j][0] for j in live]
    uncond_rows = [pairs[j][1] for j in live]
    if folded is not None:
        neg_out = folded[live]
    else:
        neg_out = evaluate(params, take_rows(probe.negative, live), uncond_rows)
    cosine = alignment(x_out[cond_rows], x_out[uncond_rows], neg_out)
    images = [probe.images[j] for j in live]
    probe.outputs = {image: neg_out[k] for k, image in enumerate(images)}
    switched = probe.detector.decide(probe.step, images, cosine)
    for k, image in enumerate(images):
        if image in switched:
            x_out[uncond_rows[k]] = neg_out[k].to(x_out.dtype)
    return switched
