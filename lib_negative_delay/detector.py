"""Automatic critical-step detection, per image of the batch. Pure torch, no WebUI imports.

Signal: *neutralisation alignment*.  The negative prompt removes an object by subtracting its own
prediction where the positive prediction draws that object (Ban et al., arXiv 2406.02965).  So the
moment to bring it in is when the positive prompt's guidance starts to point the way the negative
prompt's does.  At a step ``k`` the detector compares, per image,

    d_pos = x0(positive) - x0(empty)        d_neg = x0(negative) - x0(empty)

by their cosine; ``x0`` may equally be the model's noise prediction (the cosine of differences is the
same for eps, v and x0 outputs of one input).  ``d_pos`` and the empty branch come from the step's own
model call; the negative branch costs one extra evaluation per undecided image and step of the window.
An image switches at ``k`` when ``min_step <= k < max_step`` and the cosine is at least the threshold;
undecided images switch at ``max_step``.  A switching image uses that extra evaluation as its uncond
at ``k`` already, so an auto switch at ``k`` gives the image of a fixed delay ``k`` up to float rounding (that
evaluation comes from its own, smaller call).

Chosen on the benchmark (``bench/bench_auto.py``): it scored best of the signals tried.
"""

from __future__ import annotations

import torch

# sensitivity 0..1 → cosine threshold: 0 → 0.5 (switch only on clear alignment), 0.5 → -0.4, 1 → -1.3 (at once)
_AT_ZERO, _SLOPE = 0.5, 1.8


def threshold_for(sensitivity: float) -> float:
    """Map the UI's sensitivity (0..1) linearly onto the cosine threshold; higher switches earlier."""
    s = min(max(float(sensitivity), 0.0), 1.0)
    return _AT_ZERO - _SLOPE * s


def alignment(pos: torch.Tensor, empty: torch.Tensor, negative: torch.Tensor) -> torch.Tensor:
    """Per image: cosine between ``negative - empty`` and ``pos - empty`` (0 where either difference is 0)."""
    d_pos = (pos.float() - empty.float()).flatten(1)
    d_neg = (negative.float() - empty.float()).flatten(1)
    return torch.nn.functional.cosine_similarity(d_pos, d_neg, dim=1, eps=1e-12)


class AlignmentDetector:
    """Decides, step by step and per image, when each image switches to the real negative prompt."""

    def __init__(self, batch: int, threshold: float, min_step: int, max_step: int) -> None:
        self.batch = batch
        self.threshold = threshold
        self.min_step = max(0, min_step)
        self.max_step = max(self.min_step, max_step)
        self.switch_at: list[int | None] = [None] * batch
        self._last_step = -1

    def needs(self, step: int) -> bool:
        """Whether ``step`` has not been looked at yet (the first evaluation of a step probes it)."""
        return step > self._last_step

    def probing(self, step: int) -> list[int]:
        """Mark ``step`` as looked at; returns the images whose negative branch should be evaluated now."""
        self._last_step = max(self._last_step, step)
        if not self.min_step <= step < self.max_step:
            return []
        return [i for i, at in enumerate(self.switch_at) if at is None]

    def decide(self, step: int, images: list[int], cosine: torch.Tensor) -> list[int]:
        """Record the cosines measured at ``step`` for ``images``; returns those that switch now."""
        switched = []
        for i, value in zip(images, cosine.tolist(), strict=True):
            if self.switch_at[i] is None and value >= self.threshold:
                self.switch_at[i] = step
                switched.append(i)
        return switched

    def uses_negative(self, step: int) -> list[bool]:
        """Per image: does ``step`` use the real negative prompt? (Undecided images do from ``max_step``.)"""
        return [step >= (self.max_step if at is None else at) for at in self.switch_at]

    def finish(self, steps: int) -> list[int]:
        """First step with the real negative per image, for the infotext; ``steps`` means never."""
        return [min(steps, self.max_step if at is None else at) for at in self.switch_at]
