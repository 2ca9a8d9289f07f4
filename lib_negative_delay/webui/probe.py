"""Auto mode's measurement inside one CFG-denoiser evaluation.

``prepare`` runs in ``on_cfg_denoiser`` (before the model call): it notes, for the images still undecided,
where their positive and uncond rows sit in the batch and what their real negative conditioning is.
``run`` runs in ``on_cfg_denoised`` (after the model call, before the CFG combine): it evaluates the real
negative for those images (one extra model call, only their rows), measures the alignment, and writes the
negative's output into the uncond rows of images that switch, in place, so they use the negative at this
very step.  Layout of the WebUI's batch (``CFGDenoiser.forward``): the positive rows of every image
(several per image with AND), then one uncond row per image.

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
    return Probe(
        detector=detector,
        step=step,
        images=images,
        uncond_rows=[n_cond + i for i in images],
        total_rows=total,
        params=params,
        negative=take_rows(negative, images),
    )


def _condition(cond: Cond, image_cond: torch.Tensor) -> dict:
    """The model's condition dict, built as ``CFGDenoiser.forward``'s ``make_condition_dict`` does."""
    from modules import shared

    if getattr(getattr(shared.sd_model, "model", None), "conditioning_key", None) == "crossattn-adm":
        return {"c_crossattn": [cond], "c_adm": image_cond}
    if isinstance(cond, dict):
        return {**cond, "c_concat": [image_cond]}
    return {"c_crossattn": [cond], "c_concat": [image_cond]}


def run(probe: Probe, x_out: torch.Tensor) -> list[int]:
    """Measure, decide, and give the switching images their negative output at this step; returns them."""
    params = probe.params
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
    negative = _padded_negative(params.denoiser, params.text_cond, take_rows(probe.negative, live))
    with torch.no_grad():
        neg_out = params.denoiser.inner_model(
            params.x[uncond_rows], params.sigma[uncond_rows], cond=_condition(negative, params.image_cond[uncond_rows])
        )
    cosine = alignment(x_out[cond_rows], x_out[uncond_rows], neg_out)
    images = [probe.images[j] for j in live]
    switched = probe.detector.decide(probe.step, images, cosine)
    for k, image in enumerate(images):
        if image in switched:
            x_out[uncond_rows[k]] = neg_out[k].to(x_out.dtype)
    return switched
