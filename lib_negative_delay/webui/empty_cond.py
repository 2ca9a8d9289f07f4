"""The empty negative prompt, encoded the way the WebUI encodes it, for the text encoder as it is now.

It is encoded afresh for every sampling pass that needs it (lazily, at its first delayed evaluation):
extra networks (LoRA) are active by then, and Clip skip, emphasis and the SDXL size/crop options are read
as this pass uses them.  A checkpoint change within the pass (the refiner) is recognised by the
checkpoint's identity (file name and hash), not by the Python object, which the WebUI may reuse.
"""

from __future__ import annotations

import itertools
import sys

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


def encode_empty(model: object, width: int, height: int, distilled: float | None = None) -> tuple[int, Cond]:
    """Encode "" as a one-row negative prompt for ``model`` at ``width``×``height``.

    Returns a token unique to this encoding (the key of its fitted copies) and the conditioning.  Uses the
    WebUI's own path (``SdConditioning`` with ``is_negative_prompt=True`` and the pass size), so SDXL gets
    its all-zero empty negative and the right size conditioning.  ``distilled``: the pass's distilled CFG scale
    (Forge and Neo pass it with every negative; Flux puts it in its ``guidance`` entry).
    """
    from modules import devices, prompt_parser, shared

    if callable(getattr(model, "set_clip_skip", None)):  # Forge/Neo engines: Clip skip is set per encoding
        model.set_clip_skip(int(getattr(shared.opts, "CLIP_stop_at_last_layers", 1)))
    extra = {}
    if distilled is not None:
        extra["distilled_cfg_scale"] = _sampling_shift(model) if getattr(model, "use_shift", False) else distilled
    batch = prompt_parser.SdConditioning([""], is_negative_prompt=True, width=width, height=height, **extra)
    refiner = _RefinerShift()
    with torch.no_grad(), devices.autocast(), refiner:
        cond = model.get_learned_conditioning(batch)
    if isinstance(cond, dict):
        cond = {k: v.detach() for k, v in cond.items()}
    else:
        cond = cond.detach()
    return next(_tokens), cond


def _sampling_shift(model: object) -> float | None:
    """The sampling shift of Neo's flow engines now. Their ``get_learned_conditioning`` sets the predictor's shift to
    the prompt's ``distilled_cfg_scale`` (Wan, Z-Image, Lumina 2: the "Shift" slider); the text encoding
    does not depend on it. Passing the shift in place keeps the schedule Neo made for this and the next pass (a hires
    pass may have another shift, set when its conds were encoded before the first pass)."""
    unet = getattr(getattr(model, "forge_objects", None), "unet", None)
    shift = getattr(getattr(getattr(unet, "model", None), "predictor", None), "shift", None)
    return None if shift is None else float(shift)


class _RefinerShift:
    """Keeps Neo's ``backend.diffusion_engine.wan.refiner_shift`` (the shift a refiner loaded next gets), which Wan's
    ``get_learned_conditioning`` writes, as it was before the empty prompt's encoding."""

    def __enter__(self) -> None:
        self.module = sys.modules.get("backend.diffusion_engine.wan")
        self.value = getattr(self.module, "refiner_shift", None)

    def __exit__(self, *_exc: object) -> None:
        if self.module is not None and hasattr(self.module, "refiner_shift"):
            self.module.refiner_shift = self.value


def clear(*_args: object) -> None:
    """Drop every fitted copy (called when a checkpoint is loaded)."""
    fitted.clear()
