"""Which model architecture a generation runs, and what the delay does with it.

SD1, SD2 and SDXL are recognised in every host by the model's flags (``is_sd1`` / ``is_sd2`` / ``is_sdxl``). The
"Forge 2" hosts (Forge, Forge Neo, reForge 2) also run models of other architectures; they are told apart by the
engine's class name (``type(sd_model).__name__``), because Neo sets ``is_flux`` for Chroma, Lumina 2 and Z-Image too
(docs/forks.md §1, §4).

For those engines the empty negative prompt differs from SD's in three ways (read in Forge Neo 2.6, ``backend/
diffusion_engine/*.py`` and ``backend/text_processing/*.py``; checked in a running Neo, docs/forks.md §7):

- its token length is the text encoder's own (T5 with one padding token for Chroma, Qwen's template stripped for
  Qwen-Image; T5 padded to 256 for Flux, UMT5 to 512 for Wan). These are joint-attention transformers, where repeating
  tokens changes the result, so the empty prompt keeps its own length (``token_chunks`` False), as Neo's own empty
  negative has (Z-Image: Qwen3, Lumina 2: Gemma2, both unpadded); Neo then batches it as any negative;
- it is encoded with the pass's distilled CFG scale (Flux's ``guidance`` entry) - or, for the engines whose
  ``distilled_cfg_scale`` is the sampling shift (Wan, Z-Image, Lumina 2: ``use_shift``), with the shift the
  predictor has now, because encoding sets it (see ``empty_cond``);
- auto-detect measures in Neo's post-CFG hook like for SD (``forge_auto``: on x0 predictions, which Neo derives
  from the velocity as x0 = x - sigma v); where the images of a batch switch at different steps and the empty prompt
  and the negative have different token lengths, the batch keeps the empty prompt and the switched images get the
  negative's share from the extra evaluation (``Seam.carry``). Enabled for the engines where a running Neo showed an
  auto switch at step k giving the image of a fixed delay k up to float rounding (docs/forks.md §8).
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from typing import Any

from lib_negative_delay.webui import host


@dataclass(frozen=True)
class Architecture:
    name: str
    token_chunks: bool = True
    """True: conditioning comes in 75-token chunks (SD), and the empty prompt may repeat its chunk to the negative's
    length (cross-attention over repeated identical chunks is unchanged). False: it keeps its own length."""
    auto: bool = True
    """auto-detect available (else the fixed delay is used, with one log line)"""
    refusal: str = ""
    """why the delay is not applied to this architecture (empty: it is)"""


SD = Architecture("SD1/SD2/SDXL")
SD_FLAGS = ("is_sd1", "is_sd2", "is_sdxl")

NEO = {
    "Chroma": Architecture("Chroma", token_chunks=False),
    "Flux": Architecture("Flux", token_chunks=False),
    "QwenImage": Architecture("Qwen-Image", token_chunks=False),
    "Wan": Architecture("Wan 2.1/2.2", token_chunks=False),
    "ZImage": Architecture("Z-Image", token_chunks=False),
    "Lumina2": Architecture("Lumina 2", token_chunks=False),
}
"""Forge Neo's engines other than SD (``backend/diffusion_engine/``), by class name."""


VARIANTS = {
    ("Flux", "kontext"): Architecture("Flux Kontext", token_chunks=False, auto=False),
    ("QwenImage", "edit"): Architecture("Qwen-Image Edit", token_chunks=False, auto=False),
}
"""Neo's edit models, which share an engine class with a text-to-image model: Neo's loader sets
``backend.args.dynamic_args["kontext"]`` / ``["edit"]`` from the checkpoint's file name (N ``backend/loader.py``). Their
reference latents sit in ``dynamic_args["ref_latents"]``, which the model reads in every call and only the *positive*
prompt's encoding sets (N ``backend/diffusion_engine/flux.py``, ``qwen.py``): the empty negative, encoded as a
negative like Neo's own, leaves them as they are and the uncond rows get them like any negative. The fixed delay
applies (read in the source, not run); auto-detect falls back to it until a running Neo has checked them."""


def _neo_flags() -> dict:
    module = sys.modules.get("backend.args")
    flags = getattr(module, "dynamic_args", None)
    return flags if isinstance(flags, dict) else {}


SD3 = Architecture("SD3", token_chunks=False, auto=False)
"""SD3 in AUTOMATIC1111 v1.10 (``is_sd3``, set from the checkpoint's keys in ``sd_models.set_model_type``): its
conditioning is CLIP-L/G tokens followed by as many T5 tokens (``models/sd3/sd3_cond.py``), 154 per 75-token chunk,
for a joint-attention MMDiT, so the empty prompt keeps its own length, as the WebUI's own empty negative has. Read in
the source, not run: auto-detect is not offered. The forks (reForge and Forge ``main`` have SD3) refuse it."""


def of(model: Any, running: host.Host) -> Architecture:
    """The architecture of ``model`` in the host ``running``; a refused one when it is not known there."""
    if any(getattr(model, flag, False) for flag in SD_FLAGS):
        return SD
    if getattr(model, "is_sd3", False):
        if running.family == host.A1111:
            return SD3
        return Architecture("SD3", refusal=f"SD3 is not supported in {running.name} (only in AUTOMATIC1111)")
    if running.family != host.FORGE2:
        return SD
    engine = type(model).__name__
    if running.name == "Forge Neo" and engine in NEO:
        flags = _neo_flags()
        for (name, flag), variant in VARIANTS.items():
            if engine == name and flags.get(flag):
                return variant
        return NEO[engine]
    supported = "SD1, SD2 and SDXL"
    if running.name == "Forge Neo":
        supported += ", " + ", ".join(a.name for a in NEO.values() if not a.refusal)
    return Architecture(engine, refusal=f"model type {engine} is not supported ({supported} are)")
