"""Automatic critical-step detection, per image of the batch. Pure torch, no WebUI imports.

The default signal is *structure stabilisation*: the relative change of the positive branch's
predicted clean image (x0) between consecutive steps.  Early on the prediction swings as the layout
forms; once the positive prompt has laid the picture out, the change drops.  That drop is the
critical step of the paper: the content the negative prompt should act on is now there.  The signal
is free (the sampler computes x0 anyway) and needs no extra UNet evaluation.

An image switches to the real negative prompt at step ``k`` when ``min_step <= k`` and its change at
``k`` is at most the threshold, or when ``k`` reaches ``max_step``.  Before the switch the trajectory
is exactly the one with the empty negative prompt, so an auto switch at ``k`` produces the same image
as a fixed delay of ``k``.
"""

from __future__ import annotations

import torch

# sensitivity 0..1 → change threshold; higher sensitivity switches earlier (at a larger remaining change)
_LOW, _HIGH = 0.05, 0.6


def threshold_for(sensitivity: float) -> float:
    """Map the UI's sensitivity (0..1) geometrically onto a relative-change threshold."""
    s = min(max(float(sensitivity), 0.0), 1.0)
    return _LOW * (_HIGH / _LOW) ** s


def relative_change(previous: torch.Tensor, current: torch.Tensor) -> torch.Tensor:
    """Per-image ``||current - previous|| / ||current||`` over all non-batch dimensions."""
    diff = (current.float() - previous.float()).flatten(1).norm(dim=1)
    return diff / current.float().flatten(1).norm(dim=1).clamp_min(1e-8)


class StabilityDetector:
    """Decides, step by step and per image, when each image switches to the real negative prompt."""

    def __init__(self, batch: int, threshold: float, min_step: int, max_step: int) -> None:
        self.batch = batch
        self.threshold = threshold
        self.min_step = max(0, min_step)
        self.max_step = max(self.min_step, max_step)
        self.switch_at: list[int | None] = [None] * batch
        self._previous: torch.Tensor | None = None
        self._change: torch.Tensor | None = None
        self._last_step = -1

    def needs(self, step: int) -> bool:
        """Whether ``step`` has not been observed yet (the first evaluation of a step observes it)."""
        return step > self._last_step

    def observe(self, step: int, x0: torch.Tensor | None) -> None:
        """Feed the positive x0 prediction available at the start of ``step`` (None when unknown)."""
        if step <= self._last_step:
            return
        self._last_step = step
        if x0 is None or x0.shape[0] != self.batch:
            self._change = None  # no usable prediction: only the latest-step bound can switch
        else:
            x0 = x0.detach()
            same_shape = self._previous is not None and self._previous.shape == x0.shape
            self._change = relative_change(self._previous, x0) if same_shape else None
            self._previous = x0
        for i in range(self.batch):
            if self.switch_at[i] is not None or step < self.min_step:
                continue
            stable = self._change is not None and float(self._change[i]) <= self.threshold
            if stable or step >= self.max_step:
                self.switch_at[i] = step

    def uses_negative(self, step: int) -> list[bool]:
        """Per image: does ``step`` use the real negative prompt?"""
        return [at is not None and step >= at for at in self.switch_at]

    def finish(self, steps: int) -> list[int]:
        """Switch steps for the infotext; images that never switched report ``steps``."""
        return [steps if at is None else at for at in self.switch_at]
