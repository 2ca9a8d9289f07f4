"""Fake models of Forge Neo's engines other than SD, for the stand-in's ``neo`` flavour.

What the extension relies on, read in Forge Neo 2.6 (``backend/diffusion_engine/{chroma,flux,qwen,wan}.py``,
``backend/text_processing/{t5,qwen,umt5}_engine.py``) and checked in a running Neo (docs/forks.md §7):

- the engine's class name says the architecture (``Chroma``, ``Flux``, ``QwenImage``, ``Wan``); the SD flags are off;
- the text encoder's output has its own token length per prompt, not 77-token chunks: Chroma's T5 adds an end token
  and one padding token (no minimum length), Qwen-Image strips its chat template (no padding), Flux pads T5 to 256
  tokens, Wan pads UMT5 to 512 (here: 8 and 16 rows). A batch of different lengths cannot be stacked;
- Flux's conditioning is a dict of ``crossattn`` (T5), ``vector`` (CLIP-L pooled) and ``guidance``, one value per
  prompt: the prompt's ``distilled_cfg_scale`` or 3.5;
- Qwen-Image reads ``prompt.is_negative_prompt`` (a plain list raises);
- Wan's ``get_learned_conditioning`` sets the predictor's sampling shift to the prompt's ``distilled_cfg_scale``
  (``set_parameters(shift=None)`` keeps it; Z-Image and Lumina 2 do the same) and stores it in its module's
  ``refiner_shift``; Qwen-Image has a shift but its encoding leaves it alone;
- these are joint-attention transformers: the image tokens attend to text and image tokens together, so repeating the
  text tokens changes the output. The fakes pool the text rows with a weight that depends on their count.

- Flux Kontext and Qwen-Image Edit share the engine class; Neo's loader marks them in ``backend.args.dynamic_args``
  (``kontext`` / ``edit``), and only a positive prompt's encoding hands the queued reference latents to
  ``dynamic_args["ref_latents"]`` (modelled for Flux).

Not modelled: flow-matching schedules (the fakes are eps models on SD's schedule, so levels are SD sigmas), 5-D video
latents, reference latents of edit models, the real encoders' maths.
"""

from __future__ import annotations

import sys
import types
from typing import Any

import torch
from fake_models import FakeSD1Model, FakeTextEncoder


class FakeFlowPredictor:
    """``backend.modules.k_prediction.PredictionDiscreteFlow``'s shift: ``set_parameters(shift=None)`` keeps the value;
    ``seen`` lists the shift at every model evaluation (what a schedule made then would use)."""

    def __init__(self, shift: float) -> None:
        self.shift = shift
        self.seen: list[float] = []

    def set_parameters(self, *, shift: float | None = None, multiplier: float | None = None) -> None:
        self.shift = shift or self.shift


class _SequenceModel(FakeSD1Model):
    """An engine whose text conditioning is a plain token sequence of its own length."""

    is_sd1 = False
    min_rows = 0  # pad every prompt to at least this many rows (0: no minimum)
    end_rows = 2  # rows appended after the text (end token, padding token)
    shift: float | None = None  # the predictor's default shift (None: no shift parameter)

    def __init__(self, dim: int = 32, seed: int = 40, name: str = "fake-neo") -> None:
        super().__init__(dim=dim, seed=seed, name=name)
        self.text_encoder = FakeTextEncoder(dim, seed + 1)
        self.predictor = None if self.shift is None else FakeFlowPredictor(self.shift)
        self.is_flux = False
        self.is_wan = False
        self.use_shift = False
        self.use_distilled_cfg_scale = False

    def _encode_text(self, text: str) -> torch.Tensor:
        words = [token for chunk in FakeTextEncoder.tokenize_weighted(text) for token, _ in chunk]
        rows = max(len(words) + self.end_rows, self.min_rows)
        tokens = words + ["</s>"] * (rows - len(words))
        e = torch.stack([self.text_encoder.word_embedding(t) for t in tokens])
        cum = torch.cumsum(e, dim=0) / torch.arange(1, rows + 1)[:, None]
        return torch.tanh(0.6 * e + 0.4 * cum)

    def get_learned_conditioning(self, batch: list[str]) -> Any:
        self.encode_calls.append([str(x) for x in batch])
        return torch.stack([self._encode_text(str(x)) for x in batch])  # raises for different lengths, as Neo does

    def apply_model(self, x_noisy: torch.Tensor, t: torch.Tensor, cond: Any, return_ids: bool = False):
        if self.predictor is not None:
            self.predictor.seen.append(float(self.predictor.shift))
        return super().apply_model(x_noisy, t, cond, return_ids)

    def _pooled(self, ca: torch.Tensor) -> torch.Tensor:
        """Joint attention's share of the text tokens: their sum over text and a fixed number of image tokens."""
        return ca.float().sum(dim=1) / (ca.shape[1] + 8)


class Chroma(_SequenceModel):
    """Chroma: T5 with an end token and one padding token, no minimum length; no shift."""

    def __init__(self, seed: int = 40) -> None:
        super().__init__(seed=seed, name="fake-chroma")
        self.is_flux = True


class QwenImage(_SequenceModel):
    """Qwen-Image: the template-stripped Qwen2.5-VL tokens (no padding); reads is_negative_prompt."""

    end_rows = 1

    def __init__(self, seed: int = 50) -> None:
        super().__init__(seed=seed, name="fake-qwen-image")
        self.is_wan = True

    def get_learned_conditioning(self, batch: list[str]) -> Any:
        batch.is_negative_prompt  # noqa: B018 - Neo reads it (AttributeError on a plain list)
        return super().get_learned_conditioning(batch)


class Wan(_SequenceModel):
    """Wan 2.1/2.2: UMT5 padded to a minimum length (16 here, 512 in Neo); sets the shift and ``refiner_shift``."""

    min_rows = 16
    shift = 8.0

    def __init__(self, seed: int = 60) -> None:
        super().__init__(seed=seed, name="fake-wan")
        self.is_wan = True
        self.use_shift = True

    def get_learned_conditioning(self, batch: list[str]) -> Any:
        shift = getattr(batch, "distilled_cfg_scale", 8.0)
        self.forge_objects.unet.model.predictor.set_parameters(shift=shift)
        _wan_module().refiner_shift = shift
        return super().get_learned_conditioning(batch)


class Flux(_SequenceModel):
    """Flux dev: {"crossattn": T5 padded to 8 rows here, "vector": pooled CLIP-L, "guidance": distilled CFG}."""

    min_rows = 8
    pooled_dim = 12

    def __init__(self, seed: int = 70) -> None:
        super().__init__(seed=seed, name="fake-flux")
        self.is_flux = True
        self.use_distilled_cfg_scale = True
        g = torch.Generator().manual_seed(seed + 5)
        self.w_pool = torch.randn(self.dim, self.pooled_dim, generator=g) / self.dim**0.5
        self.w_vec = torch.randn(self.pooled_dim, self.latent_channels, generator=g) * 0.5
        self.w_guidance = torch.randn(self.latent_channels, generator=g) * 0.1
        self.ref_latents: list[torch.Tensor] = []  # Kontext: what encode_first_stage queued for the next positive

    def get_learned_conditioning(self, batch: list[str]) -> dict[str, torch.Tensor]:
        crossattn = super().get_learned_conditioning(batch)
        vector = torch.tanh(crossattn.mean(dim=1) @ self.w_pool)
        guidance = getattr(batch, "distilled_cfg_scale", 3.5) or 3.5
        flags = neo_dynamic_args()
        if not getattr(batch, "is_negative_prompt", False) and flags.get("kontext"):
            # Kontext: the positive prompt's encoding hands the pending reference latents to every model call
            flags["ref_latents"] = list(self.ref_latents)
            self.ref_latents.clear()
        return {"crossattn": crossattn, "vector": vector, "guidance": torch.tensor([float(guidance)] * len(batch))}

    def _crossattn_and_vector(self, cond: Any):
        if isinstance(cond, dict) and "crossattn" in cond:
            return cond["crossattn"], (cond.get("vector"), cond.get("guidance")), cond.get("c_concat")
        raise TypeError(f"Flux.apply_model: expected a dict with crossattn, vector and guidance, got {type(cond)}")

    def _vector_term(self, vector: Any) -> Any:
        pooled, guidance = vector
        if pooled is None or guidance is None:
            raise RuntimeError("Flux dev needs its pooled vector and guidance")
        return pooled.float() @ self.w_vec + guidance.float()[:, None] * self.w_guidance


def neo_dynamic_args() -> dict:
    """``backend.args.dynamic_args`` (Neo's per-load flags and the edit models' reference latents), made on first
    use while the neo flavour is active."""
    import fork_flavour

    module = sys.modules.get("backend.args")
    if module is None:
        module = types.ModuleType("backend.args")
        module.dynamic_args = {"kontext": False, "edit": False}
        fork_flavour.add_module(module)  # gone again when the stand-in leaves the fork flavour
    return module.dynamic_args


def _wan_module() -> types.ModuleType:
    """Stands for ``backend.diffusion_engine.wan`` (its module-level ``refiner_shift``) while a fake Wan is used."""
    import fork_flavour

    module = sys.modules.get("backend.diffusion_engine.wan")
    if module is None:
        module = types.ModuleType("backend.diffusion_engine.wan")
        module.refiner_shift = None
        fork_flavour.add_module(module)  # gone again when the stand-in leaves the fork flavour
    return module


ENGINES = {"chroma": Chroma, "qwen-image": QwenImage, "wan": Wan, "flux": Flux}
