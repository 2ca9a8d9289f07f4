"""Shape an encoded empty prompt like the negative conditioning it replaces. Pure torch.

Conditioning comes in two forms: a tensor ``[batch, tokens, dim]`` (SD1/SD2) or a dict with a
``crossattn`` tensor ``[batch, tokens, dim]`` and a pooled ``vector`` ``[batch, dim]`` (SDXL).
"""

from __future__ import annotations

from collections import OrderedDict

import torch

Cond = torch.Tensor | dict


class ShapedDict(dict):
    """A conditioning dict that reports the shape of its ``crossattn`` (the WebUI reads ``uncond.shape``)."""

    @property
    def shape(self) -> torch.Size:
        return self["crossattn"].shape


class UnsupportedConditioning(ValueError):
    """The negative conditioning has a form this extension cannot replace."""


def crossattn(cond: Cond) -> torch.Tensor:
    """The token sequence of a conditioning."""
    if isinstance(cond, dict):
        if "crossattn" not in cond:
            raise UnsupportedConditioning(f"conditioning dict without 'crossattn' (keys: {sorted(cond)})")
        return cond["crossattn"]
    if isinstance(cond, torch.Tensor):
        return cond
    raise UnsupportedConditioning(f"conditioning of type {type(cond).__name__}")


def describe(cond: Cond) -> str:
    """Short shape description for log messages."""
    if isinstance(cond, dict):
        return "{" + ", ".join(f"{k}: {tuple(v.shape)}" for k, v in cond.items() if hasattr(v, "shape")) + "}"
    return str(tuple(cond.shape)) if hasattr(cond, "shape") else type(cond).__name__


CONTROL_MARK = 1024.0
"""ControlNet for A1111 (Mikubill/sd-webui-controlnet, ``hook.mark_prompt_context``) puts one extra first token row
of +1024 (positive) or -1024 (negative) in front of every conditioning while a unit is active, and its UNet hook
reads and strips it to tell cond rows from uncond rows."""


def control_marker(target: torch.Tensor, chunk: int) -> torch.Tensor | None:
    """The marker rows ``[batch, 1, dim]`` of a conditioning marked by ControlNet, or None.

    Marked: one token more than whole chunks, and every value of the first token row within 1e-3 of +-1024 in
    every image (ControlNet's own test is that mean distance; no text encoder produces such a row)."""
    if target.shape[1] % chunk != 1:
        return None
    first = target[:, :1, :]
    if not bool(((first.float().abs() - CONTROL_MARK).abs() < 1e-3).all()):
        return None
    return first


def fit_empty(empty: Cond, like: Cond, token_chunks: bool = True) -> Cond:
    """Repeat the one-row ``empty`` conditioning to the batch, token length, device and dtype of ``like``.

    ``token_chunks`` False (the joint-attention models of Forge Neo, ``webui.architecture``): the empty prompt keeps
    its own token length, because repeating tokens would change what those models compute.

    The token length is matched by repeating the empty prompt's own token chunk, which is what the
    WebUI's "pad prompt/negative prompt" option does; attention over repeated identical chunks equals
    attention over one chunk, so this changes nothing but keeps cond and uncond batchable together.
    A length that is not a whole number of chunks keeps the empty prompt's own length (the WebUI
    then pads or evaluates separately, as it would for any negative prompt).  A negative marked by ControlNet
    (``control_marker``) gives the empty prompt the same marker row first, so ControlNet still sees an uncond row
    and cond and uncond keep one length (an unmarked, shorter uncond would be evaluated separately and taken for
    a positive row).
    """
    if isinstance(empty, dict) != isinstance(like, dict):
        raise UnsupportedConditioning(f"empty prompt {describe(empty)} does not match negative {describe(like)}")
    target = crossattn(like)
    source = crossattn(empty)
    if source.dim() != 3 or target.dim() != 3 or source.shape[-1] != target.shape[-1]:
        raise UnsupportedConditioning(f"empty prompt {describe(empty)} does not match negative {describe(like)}")
    batch, tokens = target.shape[0], target.shape[1]
    chunk = source.shape[1]
    marker = control_marker(target, chunk) if token_chunks else None
    text = tokens - (0 if marker is None else 1)
    repeats = text // chunk if token_chunks and text % chunk == 0 else 1
    tokens_out = source[:1].repeat(batch, repeats, 1).to(device=target.device, dtype=target.dtype)
    if marker is not None:
        tokens_out = torch.cat([marker, tokens_out], dim=1)
    if not isinstance(like, dict):
        return tokens_out

    missing = set(like) - set(empty)
    if missing:
        raise UnsupportedConditioning(f"empty prompt lacks {sorted(missing)} present in negative {describe(like)}")
    out = {}
    for key, value in like.items():
        if key == "crossattn":
            out[key] = tokens_out
            continue
        src = empty[key]
        if not isinstance(value, torch.Tensor) or src.shape[1:] != value.shape[1:]:
            raise UnsupportedConditioning(f"'{key}': empty prompt {describe(empty)} vs negative {describe(like)}")
        out[key] = src[:1].expand(value.shape[0], *src.shape[1:]).to(device=value.device, dtype=value.dtype)
    return _like_type(like, out)


def _like_type(like: dict, out: dict) -> dict:
    """Return ``out`` as the same dict type as ``like`` (the WebUI's ``DictWithShape``), keeping ``.shape``."""
    try:
        typed = type(like)(out)
        if hasattr(typed, "shape"):
            return typed
    except Exception:
        pass
    return ShapedDict(out)


def _signature(cond: Cond) -> tuple:
    if isinstance(cond, dict):
        return tuple(sorted((k, tuple(v.shape), str(v.dtype), str(v.device)) for k, v in cond.items()))
    return (tuple(cond.shape), str(cond.dtype), str(cond.device))


class FittedCache:
    """Small LRU of ``fit_empty`` results keyed by the empty prompt and the target's shape/dtype/device.

    The denoiser is evaluated dozens of times per image with the same shapes; fitting once per shape
    keeps the per-evaluation cost to a dictionary lookup.
    """

    def __init__(self, size: int = 16) -> None:
        self.size = size
        self._items: OrderedDict[tuple, Cond] = OrderedDict()

    def get(self, empty_key: object, empty: Cond, like: Cond, token_chunks: bool = True) -> Cond:
        key = (empty_key, _signature(like), token_chunks)
        hit = self._items.get(key)
        if hit is not None:
            self._items.move_to_end(key)
            return hit
        fitted = fit_empty(empty, like, token_chunks)
        self._items[key] = fitted
        while len(self._items) > self.size:
            self._items.popitem(last=False)
        return fitted

    def clear(self) -> None:
        self._items.clear()

    def __len__(self) -> int:
        return len(self._items)


def mixable(empty: Cond, negative: Cond) -> bool:
    """Whether ``mix_rows`` can put rows of the two in one batch (same form, same shape of every entry)."""
    if isinstance(empty, dict) != isinstance(negative, dict):
        return False
    if isinstance(negative, dict):
        return empty.keys() == negative.keys() and all(mixable(empty[k], v) for k, v in negative.items())
    return getattr(empty, "shape", None) == getattr(negative, "shape", None)


def mix_rows(empty: Cond, negative: Cond, use_negative: list[bool]) -> Cond:
    """Per image row: the real ``negative`` where ``use_negative`` is set, else ``empty`` (same shapes)."""
    if isinstance(empty, dict) != isinstance(negative, dict):
        raise UnsupportedConditioning(f"cannot mix {describe(empty)} with {describe(negative)}")
    if isinstance(negative, dict):
        return _like_type(negative, {k: mix_rows(empty[k], v, use_negative) for k, v in negative.items()})
    if empty.shape != negative.shape or negative.shape[0] != len(use_negative):
        raise UnsupportedConditioning(f"cannot mix {describe(empty)} with {describe(negative)} per image")
    mask = torch.tensor(use_negative, device=negative.device).view(-1, *([1] * (negative.dim() - 1)))
    return torch.where(mask, negative, empty)


def rows_of(cond: Cond) -> int:
    """Number of rows (images) of a conditioning tensor or dict."""
    return int(crossattn(cond).shape[0])


def take_rows(cond: Cond, rows: list[int]) -> Cond:
    """The given rows of a conditioning tensor or dict (dicts keep their type and ``.shape``)."""
    if isinstance(cond, dict):
        return _like_type(cond, {k: take_rows(v, rows) for k, v in cond.items()})
    return cond[torch.tensor(rows, device=cond.device, dtype=torch.long)]
