"""The empty negative prompt, encoded exactly the way the WebUI encodes it, cached per model and size."""

from __future__ import annotations

from collections import OrderedDict

import torch

from lib_negative_delay.conditioning import Cond, FittedCache

_encoded: OrderedDict[tuple, Cond] = OrderedDict()
fitted = FittedCache()
_MAX_ENTRIES = 8


def cache_key(model: object, width: int, height: int) -> tuple:
    """Identity of one encoding: the checkpoint (object and hash) and the pass size."""
    return (id(model), getattr(model, "sd_model_hash", None), int(width), int(height))


def encode_empty(model: object, width: int, height: int) -> tuple[tuple, Cond]:
    """Encode "" as a one-row negative prompt for ``model`` at ``width``×``height``; cached.

    Uses the WebUI's own path (``SdConditioning`` with ``is_negative_prompt=True`` and the pass size),
    so SDXL gets its all-zero empty negative and the right size conditioning.
    """
    key = cache_key(model, width, height)
    hit = _encoded.get(key)
    if hit is not None:
        _encoded.move_to_end(key)
        return key, hit

    from modules import devices, prompt_parser

    batch = prompt_parser.SdConditioning([""], is_negative_prompt=True, width=width, height=height)
    with torch.no_grad(), devices.autocast():
        cond = model.get_learned_conditioning(batch)
    if isinstance(cond, dict):
        cond = {k: v.detach() for k, v in cond.items()}
    else:
        cond = cond.detach()
    _encoded[key] = cond
    while len(_encoded) > _MAX_ENTRIES:
        _encoded.popitem(last=False)
    return key, cond


def clear(*_args: object) -> None:
    """Drop every cached encoding (called when a checkpoint is loaded)."""
    _encoded.clear()
    fitted.clear()
