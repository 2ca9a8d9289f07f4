"""The forks' own condition lists: what ``params.text_cond`` / ``params.text_uncond`` become after the callback.

Facts modelled (docs/forks.md §2, §3): a conditioning (tensor, or SDXL dict with ``crossattn`` and ``vector``)
becomes a one-item list of dicts holding ``cross_attn`` (and ``pooled_output``) plus ``model_conds``, the entries
the model is called with (``c_crossattn``; ``y`` for the pooled vector; ``guidance`` in the Forge 2 family when the
dict carries one). The multicond batch becomes one such dict per AND-subprompt *index*: the rows of every image's
n-th subprompt, with ``strength`` = the weight of the last image's n-th subprompt; subprompts beyond the shortest
image's count are dropped (the transposition of ``conds_list`` stops there). Before a model call every entry is
repeated or cut to the batch size of ``x``; entries are batched together when their shapes allow it (cross-attention
of different token lengths by repeating each to the least common multiple, at most four times the shorter).

Forge 2 names: ``backend.sampling.condition.Condition`` / ``ConditionCrossAttn`` / ``compile_conditions`` /
``compile_weighted_conditions``. Forge 1 names: ``CONDRegular`` / ``CONDCrossAttn`` (``ldm_patched.modules.conds``)
and ``modules_forge.forge_sampler.cond_from_a1111_to_patched_ldm`` (``_weighted``). Both families behave alike here,
so one set of classes serves both.
"""

from __future__ import annotations

import math
from typing import Any

import torch


def _fit_rows(tensor: torch.Tensor, rows: int) -> torch.Tensor:
    """``tensor`` with exactly ``rows`` rows: cut, or repeated as a whole and then cut."""
    have = tensor.shape[0]
    if have == rows:
        return tensor
    if have > rows:
        return tensor[:rows]
    times = math.ceil(rows / have)
    return tensor.repeat(times, *([1] * (tensor.ndim - 1)))[:rows]


class Condition:
    """A model input carried by a condition list entry (``Condition`` / ``CONDRegular``)."""

    def __init__(self, cond: torch.Tensor) -> None:
        self.cond = cond

    def process_cond(self, batch_size: int, device: Any = None, **kwargs: Any) -> Condition:
        """A copy fitted to the batch size of the model input."""
        fitted = _fit_rows(self.cond, batch_size)
        return type(self)(fitted if device is None else fitted.to(device))

    def can_concat(self, other: Condition) -> bool:
        return self.cond.shape == other.cond.shape

    def concat(self, others: list[Condition]) -> torch.Tensor:
        return torch.cat([self.cond, *(o.cond for o in others)])


class ConditionCrossAttn(Condition):
    """Cross-attention tokens (``ConditionCrossAttn`` / ``CONDCrossAttn``): token lengths may differ when batching."""

    def can_concat(self, other: Condition) -> bool:
        mine, theirs = self.cond.shape, other.cond.shape
        if mine == theirs:
            return True
        if mine[0] != theirs[0] or mine[2] != theirs[2]:
            return False
        return math.lcm(mine[1], theirs[1]) // min(mine[1], theirs[1]) <= 4

    def concat(self, others: list[Condition]) -> torch.Tensor:
        tensors = [self.cond, *(o.cond for o in others)]
        length = math.lcm(*(t.shape[1] for t in tensors))
        return torch.cat([t.repeat(1, length // t.shape[1], 1) for t in tensors])


def compile_conditions(cond: Any, with_guidance: bool = True) -> list[dict] | None:
    """One condition list entry for a tensor or SDXL dict (None stays None, as F/N do at CFG 1)."""
    if cond is None:
        return None
    if isinstance(cond, torch.Tensor):
        return [{"cross_attn": cond, "model_conds": {"c_crossattn": ConditionCrossAttn(cond)}}]
    entry = {
        "cross_attn": cond["crossattn"],
        "pooled_output": cond["vector"],
        "model_conds": {"c_crossattn": ConditionCrossAttn(cond["crossattn"]), "y": Condition(cond["vector"])},
    }
    if with_guidance and "guidance" in cond:
        entry["model_conds"]["guidance"] = Condition(cond["guidance"])
    return [entry]


def _rows(cond: Any, indices: list[int]) -> Any:
    if isinstance(cond, dict):
        return {key: value[indices] for key, value in cond.items()}
    return cond[indices]


def compile_weighted_conditions(cond: Any, conds_list: list, with_guidance: bool = True) -> list[dict]:
    """One entry per AND-subprompt index (see the module docstring), each with its ``strength``."""
    entries = []
    for column in zip(*conds_list, strict=False):  # stops at the shortest image
        indices = [row for row, _ in column]
        entry = compile_conditions(_rows(cond, indices), with_guidance)[0]
        entry["strength"] = column[-1][1]
        entries.append(entry)
    return entries


def forge1_conditions(cond: Any) -> list[dict]:
    """``cond_from_a1111_to_patched_ldm``: no None guard and no ``guidance`` entry in the Forge 1 family."""
    if cond is None:
        raise TypeError("cond_from_a1111_to_patched_ldm: the uncond is None")  # Forge 1 subscripts it
    return compile_conditions(cond, with_guidance=False)


def forge1_weighted_conditions(cond: Any, conds_list: list) -> list[dict]:
    """``cond_from_a1111_to_patched_ldm_weighted``."""
    return compile_weighted_conditions(cond, conds_list, with_guidance=False)
