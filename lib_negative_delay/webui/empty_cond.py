"""The empty negative prompt, encoded the way the WebUI encodes it, for the text encoder as it is now.

It is encoded afresh for every sampling pass that needs it (lazily, at its first delayed evaluation):
extra networks (LoRA) are active by then, and Clip skip, emphasis and the SDXL size/crop options are read
as this pass uses them.  A checkpoint change within the pass (the refiner) is recognised by the
checkpoint's identity (file name and hash), not by the Python object, which the WebUI may reuse.
"""

from __future__ import annotations

import itertools

import torch

from lib_negative_delay.conditioning import Cond, FittedCache

fitted = FittedCache()
_tokens = itertools.count()


def identity(model: object) -> tuple:
    """Which checkpoint's weights ``model`` holds now."""
    info = getattr(model, "sd_checkpoint_info", None)
    return (
        id(model),
        getattr(model, "sd_model_checkpoint", None),
        getattr(model, "sd_model_hash", None),
        getattr(info, "filename", None),
    )


def encode_empty(model: object, width: int, height: int) -> tuple[int, Cond]:
    """Encode "" as a one-row negative prompt for ``model`` at ``width``×``height``.

    Returns a token unique to this encoding (the key of its fitted copies) and the conditioning.  Uses the
    WebUI's own path (``SdConditioning`` with ``is_negative_prompt=True`` and the pass size), so SDXL gets
    its all-zero empty negative and the right size conditioning.
    """
    from modules import devices, prompt_parser, shared

    if callable(getattr(model, "set_clip_skip", None)):  # Forge/Neo engines: Clip skip is set per encoding
        model.set_clip_skip(int(getattr(shared.opts, "CLIP_stop_at_last_layers", 1)))
    batch = prompt_parser.SdConditioning([""], is_negative_prompt=True, width=width, height=height)
    with torch.no_grad(), devices.autocast():
        cond = model.get_learned_conditioning(batch)
    if isinstance(cond, dict):
        cond = {k: v.detach() for k, v in cond.items()}
    else:
        cond = cond.detach()
    return next(_tokens), cond


def clear(*_args: object) -> None:
    """Drop every fitted copy (called when a checkpoint is loaded)."""
    fitted.clear()
