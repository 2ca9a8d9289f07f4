"""Auto mode in the forks (Forge, Forge Neo, Forge Classic, reForge): the measurement in the post-CFG hook.

The forks never call ``cfg_denoised`` and build the cond/uncond batch themselves, so A1111's probe
(``probe.py``) has nothing to work on.  What they offer instead (``docs/forks.md`` §3):

- ``install`` (from ``process_before_every_sampling``, after the fork has reset its UNet patcher) puts a clone of
  ``p.sd_model.forge_objects.unet`` back with two functions of this pass's ``Seam``: a conditioning modifier,
  which sees the evaluation's CFG scale (Forge does not pass it to post-CFG functions), and a post-CFG function;
- ``on_cfg_denoiser`` (the callback still fires in every fork) calls ``Seam.expect`` with the images to probe
  and their real negative conditioning, before it swaps the empty prompt in;
- the post-CFG function gets the guided result and both predictions (x0, one row per image).  It evaluates the
  real negative (one extra model call over the batch's rows), measures the alignment exactly as in A1111, and
  for the images that switch replaces the uncond's share of the guided result: with
  ``cfg = u + (c - u)·s·k`` (``k``: the sum of AND weights when not 1), ``cfg' = cfg + (1 - s·k)(u' - u)``.

The extra call evaluates every row of the batch, not only the undecided images: the forks truncate or repeat
condition tensors to the batch they are given, so a subset of rows cannot be built without their internals. On
Neo's joint-attention engines, where Neo would repeat the prompt's and the negative's tokens to batch them, it
evaluates the prompt beside the negative (``Seam`` explains why): two rows per image.

The same correction carries images that already switched while others have not, where the empty prompt and the
negative cannot share one batch (Forge Neo's flow engines give each prompt its own token length): the batch keeps
the empty prompt in every row, and the carried rows get the negative's share from the extra call of that very
evaluation (``Seam.carry``; every evaluation of the mixed phase, also the second of a two-evaluation step).

The analysis sheet records in the same function (``Seam.recorder``, set by ``sheet``: on the delay's seam, or on one
it installs for the pass): after the measurement and correction it gets the evaluation's args, the real negative's
x0 where the seam evaluated it, the rows given the negative's share, and ``Seam.evaluate`` for what it still needs.

All of this works on x0 predictions (the forks hand the post-CFG function denoised images whatever the model
predicts: eps, v or, for flow models, velocity with x0 = x - sigma v), and the detector's cosine compares two
differences from one input, which is the same in any of those parameterisations.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch

from lib_negative_delay.conditioning import Cond
from lib_negative_delay.detector import AlignmentDetector, alignment
from lib_negative_delay.webui.host import FORGE2, Host

Recorder = Callable[[dict, "torch.Tensor | None", list, Callable[[Cond], torch.Tensor]], None]
"""The analysis sheet's (``sheet.after_post_cfg``): this evaluation's post-CFG args, the real negative's x0 if the seam
evaluated it, the rows the seam gave the negative's share, and a function that evaluates another conditioning."""


@dataclass
class Expected:
    """One evaluation's probe, handed from ``on_cfg_denoiser`` to the post-CFG function."""

    detector: AlignmentDetector | None  # None: nothing to measure, only rows to carry
    step: int
    images: list[int]
    negative: Cond  # the real negative conditioning, one row per image (A1111 form)
    switched: Callable[[], None]  # called after images switched (records the infotext)
    failed: Callable[[Exception], None]  # called when the measurement cannot run
    carried: list[int] = field(default_factory=list)
    """rows that use the negative already but were given the empty prompt in the batch (see the module doc)"""


class Seam:
    """This pass's hook functions on the fork's UNet patcher clone.

    ``joint``: a joint-attention engine of Neo (``architecture.token_chunks`` False). Neo batches a prompt with an
    uncond of another token length by repeating both to their least common multiple when that is at most 4 times the
    shorter (N ``backend/sampling/condition.py``, ``ConditionCrossAttn``), which such a model does not ignore: then the
    prompt's and the negative's predictions depend on the batch they share, and the extra call evaluates the negative
    beside the prompt, as the fixed delay's batch does, and the switched images get both shares of that batch. Other
    lengths are evaluated apart in any case, and the negative alone is exact."""

    def __init__(self, host: Host, joint: bool = False) -> None:
        self.host = host
        self.joint = joint
        self.pending: Expected | None = None
        self.cond_scale: float | None = None
        self.recorder: Recorder | None = None

    def expect(self, expected: Expected | None) -> None:
        self.pending = expected
        self.cond_scale = None

    def carry(self, rows: list[int], negative: Cond, failed: Callable[[Exception], None]) -> None:
        """This evaluation's batch gives ``rows`` the empty prompt though they use ``negative``: correct them in the
        post-CFG function (with the evaluation's measurement, if one is pending)."""
        if self.pending is None:
            self.pending = Expected(None, -1, [], negative, switched=lambda: None, failed=failed)
        self.pending.carried = list(rows)

    def modifier(self, model, x, timestep, uncond, cond, cond_scale, model_options, seed):  # noqa: ANN001, ANN201
        """Conditioning modifier: unchanged, but notes the CFG scale of this evaluation."""
        self.cond_scale = float(cond_scale)
        return model, x, timestep, uncond, cond, cond_scale, model_options, seed

    def post_cfg(self, args: dict) -> torch.Tensor:
        """Post-CFG function: measure, decide, and give switching images their negative at this step; then hand the
        evaluation to the analysis sheet's ``recorder`` if one is attached."""
        denoised = args["denoised"]
        expected, self.pending = self.pending, None
        if expected is None and self.recorder is None:
            return denoised
        scale = args.get("cond_scale", self.cond_scale)
        if args.get("uncond") is None or scale is None or math.isclose(float(scale), 1.0):
            return denoised  # the uncond was not evaluated this step (skip early, NGMS, CFG 1): wait
        out, negative, corrected = denoised, None, []
        if expected is not None:
            out, negative, corrected = self._apply(expected, args, float(scale))
        if self.recorder is not None:
            self.recorder(args, negative, corrected, lambda cond: self.evaluate(args, cond))
        return out

    def _apply(self, expected: Expected, args: dict, scale: float) -> tuple[torch.Tensor, torch.Tensor | None, list]:
        """(the guided result, the real negative's x0 for every row or None, the rows given the negative's share)."""
        denoised = args["denoised"]
        try:
            prompt, negative = self._evaluate_with_prompt(args, expected.negative)
            rows = expected.images
            uncond = args["uncond_denoised"]
            switched = []
            if rows and expected.detector is not None:
                cosine = alignment(args["cond_denoised"][rows], uncond[rows], negative[rows])
                switched = expected.detector.decide(expected.step, rows, cosine)
            corrected = sorted(set(switched) | set(expected.carried))
            if not corrected:
                return denoised, negative, []
            weight = scale * _edit_strength(args.get("cond"))
            out = denoised.clone()
            for i in corrected:
                out[i] = denoised[i] + (1.0 - weight) * (negative[i].to(denoised.dtype) - uncond[i])
                if prompt is not None:
                    out[i] += weight * (prompt[i].to(denoised.dtype) - args["cond_denoised"][i])
            if switched:
                expected.switched()
            return out, negative, corrected
        except Exception as exc:  # never break a generation
            expected.failed(exc)
            return denoised, None, []

    def evaluate(self, args: dict, cond: Cond) -> torch.Tensor:
        """x0 of ``cond`` (A1111 form, one row per image) at this evaluation, in one extra call over the batch's rows;
        on Neo's joint engines beside the prompt where Neo would batch them so (see the class doc)."""
        return self._evaluate_with_prompt(args, cond)[1]

    def _evaluate_with_prompt(self, args: dict, cond: Cond) -> tuple[torch.Tensor | None, torch.Tensor]:
        """(the prompt's x0 evaluated beside ``cond``, or None where it need not be; ``cond``'s x0)."""
        conds = _compile(self.host, cond, args["uncond"])
        if self.joint and self.host.family == FORGE2 and _repeated_together(args.get("cond"), conds):
            return _evaluate_beside_prompt(args, conds)
        return None, _evaluate(self.host, args, conds)


def _edit_strength(cond: Any) -> float:
    """``k`` of the forks' combine: the sum of the positive conditions' weights, 1 when it is close to 1."""
    try:
        total = float(sum(item.get("strength", 1.0) for item in cond))
    except (TypeError, AttributeError):
        return 1.0
    return 1.0 if math.isclose(total, 1.0) else total


def _compile(host: Host, negative: Cond, like: list) -> list:
    """The fork's condition list for ``negative``, with what the fork added to its uncond (inpainting concat,
    ControlNet, …) copied from ``like``, the uncond list of this very evaluation."""
    if host.family == FORGE2:
        from backend.sampling.condition import compile_conditions

        conds = compile_conditions(negative)
    else:
        from modules_forge.forge_sampler import cond_from_a1111_to_patched_ldm

        conds = cond_from_a1111_to_patched_ldm(negative)
    for mine, theirs in zip(conds, like or [], strict=False):
        for key, value in theirs.items():
            if key == "model_conds":
                for name, cond in value.items():
                    mine["model_conds"].setdefault(name, cond)
            else:
                mine.setdefault(key, value)
    return conds


def _evaluate(host: Host, args: dict, conds: list) -> torch.Tensor:
    """x0 prediction of ``conds`` at this evaluation's input, one row per image."""
    model, x, sigma, options = args["model"], args["input"], args["sigma"], args["model_options"]
    if host.family == FORGE2:
        from backend.sampling.sampling_function import calc_cond_uncond_batch

        return calc_cond_uncond_batch(model, conds, None, x, sigma, options)[0]
    from ldm_patched.modules import samplers

    if hasattr(samplers, "calc_cond_batch"):  # reForge
        return samplers.calc_cond_batch(model, [conds], x, sigma, options)[0]
    return samplers.calc_cond_uncond_batch(model, conds, None, x, sigma, options)[0]


def _repeated_together(prompt: Any, negative: list) -> bool:
    """Whether Neo batches ``prompt`` with ``negative`` by repeating their tokens to a common length
    (``ConditionCrossAttn.can_concat`` with different lengths); True when that cannot be read (the exact path)."""
    try:
        theirs = [entry["model_conds"]["c_crossattn"] for entry in prompt]
        mine = negative[0]["model_conds"]["c_crossattn"]
        return any(c.cond.shape[1] != mine.cond.shape[1] and mine.can_concat(c) for c in theirs)
    except (AttributeError, KeyError, IndexError, TypeError):
        return True


def _evaluate_beside_prompt(args: dict, conds: list) -> tuple[torch.Tensor, torch.Tensor]:
    """(prompt x0, negative x0) of ``conds`` evaluated in one call with this evaluation's prompt (Forge 2 hosts)."""
    from backend.sampling.sampling_function import calc_cond_uncond_batch

    model, x, sigma, options = args["model"], args["input"], args["sigma"], args["model_options"]
    prompt, negative = calc_cond_uncond_batch(model, args["cond"], conds, x, sigma, options)
    return prompt, negative


def install(p: Any, host: Host, joint: bool = False) -> Seam:
    """Put a clone of the fork's UNet patcher with this pass's seam on ``p.sd_model``; raises if there is none."""
    objects = p.sd_model.forge_objects
    unet = objects.unet.clone()
    seam = Seam(host, joint)
    unet.add_conditioning_modifier(seam.modifier)
    unet.set_model_sampler_post_cfg_function(seam.post_cfg)
    objects.unet = unet
    return seam
