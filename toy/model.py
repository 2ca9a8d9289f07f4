"""`ToyLDM`: the toy text-to-image model behind a LatentDiffusion-like interface (what the WebUI stand-in calls).

The "latent" is the RGB image itself in [-1, 1] (3x32x32), so first-stage encode/decode are identities.
Noise schedule: SD's discrete scaled-linear VP schedule, 1000 steps, eps-parameterisation.

Usage::

    model = ToyLDM.load()                                   # shipped weights, eval mode, CPU
    cond = model.get_learned_conditioning(["red circle on blue background"])   # [1, 16, 64]
    eps = model.apply_model(x_noisy, t, {"c_crossattn": [cond]})
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from . import world
from .text import TextEncoder, Tokenizer
from .unet import UNet

WEIGHTS_DIR = Path(__file__).resolve().parent / "weights"
FLOW_WEIGHTS_DIR = Path(__file__).resolve().parent / "weights_flow"
BUNDLED = {"eps": WEIGHTS_DIR, "flow": FLOW_WEIGHTS_DIR}
"""The bundled weights by objective: the eps model and its rectified-flow sibling (the demo's and bench's
``--model``)."""
DEFAULT_FLOW_SHIFT = 3.0
CONFIG_NAME = "config.json"
WEIGHTS_NAME = "toy_shapes.safetensors"

DEFAULT_CONFIG: dict[str, Any] = {
    "context_length": 16,
    "text_dim": 64,
    "text_layers": 2,
    "text_heads": 4,
    "unet_c1": 64,
    "unet_c2": 128,
    "unet_heads": 4,
    "vocabulary": world.vocabulary(),
    "world": {
        "accessory_prob": world.DEFAULT_ACCESSORY_PROB,
        "stray_prob": world.DEFAULT_STRAY_PROB,
        "mention_prob": world.DEFAULT_MENTION_PROB,
        "two_shape_prob": world.DEFAULT_TWO_SHAPE_PROB,
        "wearer_layout": True,
        "wearer_size_tilt": world.WEARER_SIZE_TILT,
        "wearer_cx_squeeze": world.WEARER_CX_SQUEEZE,
        "link": world.DEFAULT_LINK,
    },
}


def sd_alphas_cumprod(
    num_timesteps: int = 1000, linear_start: float = 0.00085, linear_end: float = 0.012
) -> torch.Tensor:
    """SD's "scaled linear" schedule: betas = linspace(sqrt(start), sqrt(end), T)**2; returns cumprod(1-betas)."""
    betas = torch.linspace(linear_start**0.5, linear_end**0.5, num_timesteps, dtype=torch.float64) ** 2
    return torch.cumprod(1.0 - betas, dim=0).float()


@dataclass
class CheckpointInfo:
    """Minimal stand-in for the WebUI's CheckpointInfo."""

    title: str = "toy-shapes"
    short_title: str = "toy-shapes"
    name: str = "toy-shapes"
    filename: str = ""
    hash: str = ""
    shorthash: str = ""


class TextConditioner(nn.Module):
    """Tokenizer + text encoder; callable on a list of prompts (like SD's `cond_stage_model`)."""

    def __init__(self, vocabulary: list[str], context_length: int, dim: int, layers: int, heads: int) -> None:
        super().__init__()
        self.tokenizer = Tokenizer(vocabulary, context_length)
        self.encoder = TextEncoder(self.tokenizer.vocab_size, context_length, dim, layers, heads)

    def forward(self, texts: list[str]) -> torch.Tensor:
        """Encode prompts to [B, L, D]."""
        tokens = self.tokenizer.encode([str(t) for t in texts]).to(self.encoder.position_embedding.device)
        return self.encoder(tokens)


class DiffusionWrapper(nn.Module):
    """Mirror of ldm's DiffusionWrapper: holds the UNet as `diffusion_model`, `conditioning_key == "crossattn"`."""

    conditioning_key = "crossattn"

    def __init__(self, unet: UNet) -> None:
        super().__init__()
        self.diffusion_model = unet

    def forward(
        self,
        x: torch.Tensor,
        t: torch.Tensor,
        c_crossattn: list[torch.Tensor] | None = None,
        c_concat: list[torch.Tensor] | None = None,
    ) -> torch.Tensor:
        """Predict eps; `c_concat` is ignored."""
        assert c_crossattn is not None
        return self.diffusion_model(x, t, torch.cat(list(c_crossattn), dim=1))


class ToyLDM(nn.Module):
    """Tiny pixel-space text-to-image diffusion model with a LatentDiffusion-like interface."""

    parameterization = "eps"
    cond_stage_key = "txt"
    is_sdxl = False
    is_sd1 = True
    is_sd2 = False
    is_sd3 = False
    latent_channels = 3
    num_timesteps = 1000

    def __init__(self, config: dict[str, Any] | None = None) -> None:
        super().__init__()
        cfg = dict(DEFAULT_CONFIG)
        cfg.update(config or {})
        self.config = cfg
        self.cond_stage_model = TextConditioner(
            cfg["vocabulary"], cfg["context_length"], cfg["text_dim"], cfg["text_layers"], cfg["text_heads"]
        )
        unet = UNet(3, cfg["unet_c1"], cfg["unet_c2"], cfg["text_dim"], cfg["unet_heads"], cfg.get("unet_patch", 1))
        self.model = DiffusionWrapper(unet)
        self.register_buffer("alphas_cumprod", sd_alphas_cumprod(self.num_timesteps))
        self.sd_checkpoint_info = CheckpointInfo()
        self.sd_model_hash = ""
        self.sd_model_checkpoint = ""
        self._empty_cache: torch.Tensor | None = None

    @property
    def world_link(self) -> str:
        """What the training world tied each accessory to (`world.AFFINITY`): "colour" or "shape" (weights whose
        config.json predates the setting were trained on the shape link)."""
        return str(self.config.get("world", {}).get("link", "shape"))

    # ---- construction -------------------------------------------------------------------------------------

    @classmethod
    def load(cls, path: str | Path | None = None, device: str | torch.device = "cpu") -> ToyLDM:
        """Load config json + safetensors from `path` (a directory or the .safetensors file; default: shipped)."""
        from safetensors.torch import load_file

        p = Path(path) if path is not None else WEIGHTS_DIR
        weights = p if p.suffix == ".safetensors" else p / WEIGHTS_NAME
        config = json.loads((weights.parent / CONFIG_NAME).read_text())
        if cls is ToyLDM and config.get("objective") == "flow":
            cls = ToyFlow  # noqa: PLW0642 - the config decides which model the weights belong to
        model = cls(config)
        state = {k: v.float() for k, v in load_file(str(weights)).items()}
        model.load_state_dict(state, strict=False)
        missing = [k for k in model.state_dict() if k not in state and k not in _DERIVED]
        if missing:
            raise RuntimeError(f"weights file {weights} lacks tensors: {missing[:5]}...")
        digest = hashlib.sha256(weights.read_bytes()).hexdigest()
        model.sd_model_hash = digest[:10]
        model.sd_model_checkpoint = str(weights)
        model.sd_checkpoint_info = CheckpointInfo(filename=str(weights), hash=digest, shorthash=digest[:10])
        return model.to(device).eval().requires_grad_(False)

    def save(self, directory: str | Path, extra: dict[str, Any] | None = None, fp16: bool = True) -> Path:
        """Save config json + (fp16) safetensors into `directory`; returns the weights path."""
        from safetensors.torch import save_file

        d = Path(directory)
        d.mkdir(parents=True, exist_ok=True)
        cfg = dict(self.config)
        cfg.update(extra or {})
        (d / CONFIG_NAME).write_text(json.dumps(cfg, indent=2, sort_keys=True) + "\n")
        state = {k: v.detach().cpu().contiguous() for k, v in self.state_dict().items() if k not in _DERIVED}
        if fp16:
            state = {k: (v.half() if v.is_floating_point() else v) for k, v in state.items()}
        save_file(state, str(d / WEIGHTS_NAME))
        return d / WEIGHTS_NAME

    # ---- text ---------------------------------------------------------------------------------------------

    def vocabulary(self) -> list[str]:
        """Words the model understands (anything else raises ValueError)."""
        return list(self.cond_stage_model.tokenizer.words)

    def tokenize(self, texts: list[str]) -> torch.Tensor:
        """Validate and tokenize prompts -> [B, L] long; raises ValueError listing the vocabulary."""
        return self.cond_stage_model.tokenizer.encode([str(t) for t in texts])

    def validate_prompt(self, text: str) -> None:
        """Raise ValueError (listing the vocabulary) if `text` has unknown words; "" is allowed."""
        self.cond_stage_model.tokenizer.split(str(text))

    def get_learned_conditioning(self, batch: list[str]) -> torch.Tensor:
        """Encode a list of prompts (extra attributes on the list are ignored) -> [B, L, D]."""
        return self.cond_stage_model([str(t) for t in batch])

    @property
    def cond_stage_model_empty_prompt(self) -> torch.Tensor:
        """Encoding of the empty prompt "" as [1, L, D]."""
        with torch.no_grad():
            return self.get_learned_conditioning([""])

    # ---- diffusion ----------------------------------------------------------------------------------------

    def apply_model(
        self, x_noisy: torch.Tensor, t: torch.Tensor, cond: dict | torch.Tensor | list, return_ids: bool = False
    ) -> torch.Tensor:
        """Predict eps for x_noisy [B,3,32,32] at timesteps t [B] (0..999, float ok) with cond dict/tensor."""
        ctx = _context_list(cond)
        t = torch.as_tensor(t, device=x_noisy.device)
        if t.ndim == 0:
            t = t.expand(x_noisy.shape[0])
        return self.model(x_noisy, t.float(), c_crossattn=list(ctx))

    def forward(self, x_noisy: torch.Tensor, t: torch.Tensor, cond: dict | torch.Tensor) -> torch.Tensor:
        """Alias for `apply_model`."""
        return self.apply_model(x_noisy, t, cond)

    def decode_first_stage(self, z: torch.Tensor) -> torch.Tensor:
        """Identity: the latent is the image in [-1, 1]."""
        return z

    def encode_first_stage(self, x: torch.Tensor) -> torch.Tensor:
        """Identity."""
        return x

    def get_first_stage_encoding(self, z: torch.Tensor) -> torch.Tensor:
        """Identity."""
        return z

    @property
    def device(self) -> torch.device:
        """Device of the parameters."""
        return self.alphas_cumprod.device

    @property
    def dtype(self) -> torch.dtype:
        """Parameter dtype."""
        return self.model.diffusion_model.conv_in.weight.dtype


_DERIVED = ("alphas_cumprod", "flow_sigmas")
"""Buffers computed from the config, never saved."""


def shifted_flow_sigmas(shift: float, num_timesteps: int = 1000) -> torch.Tensor:
    """Ascending training levels of a discrete rectified-flow model: t = 1..T over T, time-shifted as SD3 / Flux
    sample (sigma = shift t / (1 + (shift - 1) t)); the largest is 1 (pure noise)."""
    t = torch.arange(1, num_timesteps + 1, dtype=torch.float64) / num_timesteps
    return (shift * t / (1 + (shift - 1) * t)).float()


def flow_denoiser(model: ToyFlow) -> Any:
    """What the WebUI builds through ``create_denoiser`` for a flow model (v1.10.1's SD3 path): a k-diffusion
    discrete schedule over the model's flow levels whose forward hands the sigma itself to ``apply_model``, which
    returns x0. Built on whichever ``k_diffusion`` is importable when it is called (the WebUI's or the stand-in's)."""
    import k_diffusion

    denoiser = k_diffusion.external.DiscreteSchedule(model.flow_sigmas, quantize=False)
    denoiser.inner_model = model
    denoiser.forward = lambda input, sigma, **kwargs: model.apply_model(input, sigma, **kwargs)
    return denoiser


class ToyFlow(ToyLDM):
    """The toy world as a rectified-flow model (velocity target, sigma in [0, 1]; x_sigma = (1 - sigma) x0 + sigma
    noise, v = noise - x0), behind the interface the WebUI gives SD3 in v1.10.1: ``apply_model(x, sigma, cond)``
    takes the noise level itself and returns x0 = x - sigma v; ``create_denoiser`` gives the samplers a discrete
    schedule over the shifted flow levels; img2img noises with ``add_noise_to_latent``. The UNet sees the timestep
    1000 sigma."""

    # its text conditioning is the toy's one fixed-length chunk for a cross-attention UNet, as for the eps model:
    # SD-like to the extension (not SD3's joint-attention token layout); only the sampling path is SD3's

    def __init__(self, config: dict[str, Any] | None = None) -> None:
        super().__init__(config)
        self.config["objective"] = "flow"
        self.shift = float(self.config.get("flow_shift", DEFAULT_FLOW_SHIFT))
        self.register_buffer("flow_sigmas", shifted_flow_sigmas(self.shift, self.num_timesteps))
        # what v1.10.1 gives SD3 for the timestep samplers: the levels read back as sqrt((1 - a) / a)
        self.alphas_cumprod = 1.0 / (self.flow_sigmas**2 + 1.0)

    def velocity(self, x: torch.Tensor, sigma: torch.Tensor, context: list[torch.Tensor]) -> torch.Tensor:
        """The UNet's raw output v at levels ``sigma`` [B]."""
        return self.model(x, sigma.float() * self.num_timesteps, c_crossattn=list(context))

    def apply_model(
        self, x_noisy: torch.Tensor, t: torch.Tensor, cond: dict | torch.Tensor | list, return_ids: bool = False
    ) -> torch.Tensor:
        """x0 for ``x_noisy`` at flow levels ``t`` (sigmas in [0, 1], a scalar or [B])."""
        ctx = _context_list(cond)
        sigma = torch.as_tensor(t, device=x_noisy.device, dtype=torch.float32)
        if sigma.ndim == 0:
            sigma = sigma.expand(x_noisy.shape[0])
        v = self.velocity(x_noisy, sigma, ctx)
        return x_noisy - sigma.view(-1, 1, 1, 1) * v

    def create_denoiser(self) -> Any:
        """The samplers' inner model (WebUI v1.10.1 asks the checkpoint for one before its CompVis wrappers)."""
        return flow_denoiser(self)

    def add_noise_to_latent(self, x: torch.Tensor, noise: torch.Tensor, amount: Any) -> torch.Tensor:
        """img2img's starting point at level ``amount``: the straight path between image and noise."""
        return x * (1 - amount) + noise * amount


def _context_list(cond: dict | torch.Tensor | list) -> list[torch.Tensor]:
    if isinstance(cond, dict):
        ctx = cond.get("c_crossattn")
        return list(ctx) if isinstance(ctx, (list, tuple)) else [ctx]
    if isinstance(cond, (list, tuple)):
        return list(cond)
    return [cond]


def flow_sample_sigmas(model: ToyFlow, steps: int) -> torch.Tensor:
    """k-diffusion's default schedule of a discrete model (``DiscreteSchedule.get_sigmas``) over the flow levels."""
    return _table_schedule(model.flow_sigmas.double().cpu(), steps)[0]


def _discrete_sigmas(model: ToyLDM, steps: int) -> tuple[torch.Tensor, torch.Tensor]:
    """k-diffusion `DiscreteEpsDDPMDenoiser.get_sigmas(steps)`: (sigmas [steps+1] ending in 0, timesteps [steps])."""
    ac = model.alphas_cumprod.double().cpu()
    return _table_schedule(((1 - ac) / ac) ** 0.5, steps)


def _table_schedule(levels: torch.Tensor, steps: int) -> tuple[torch.Tensor, torch.Tensor]:
    """``steps`` levels of an ascending float64 table at timesteps evenly spaced from the last to 0, log-linearly
    interpolated, then 0: (sigmas [steps+1], timesteps [steps])."""
    log_sigmas = levels.log()
    t = torch.linspace(len(levels) - 1, 0, steps, dtype=torch.float64)
    low = t.floor().long()
    high = t.ceil().long()
    w = t - low
    log_sigma = (1 - w) * log_sigmas[low] + w * log_sigmas[high]
    sigmas = torch.cat([log_sigma.exp(), torch.zeros(1, dtype=torch.float64)])
    return sigmas.float(), t.float()


@torch.no_grad()
def _quick_sample(
    model: ToyLDM,
    prompts: list[str],
    negative_prompts: list[str] | str = "",
    seeds: list[int] | None = None,
    steps: int = 20,
    cfg_scale: float = 7.0,
    negative_start_step: int = 0,
) -> torch.Tensor:
    """Deterministic k-diffusion-style Euler sampler with CFG (test/demo helper; not the WebUI-faithful one), on the
    model's default schedule (the eps model's discrete levels, the flow model's shifted flow levels).

    Before step `negative_start_step` the unconditional branch uses the empty prompt ""; from then on it uses the
    negative prompt (the "negative prompt delay"). Returns images [B,3,32,32] in [-1,1].
    """
    n = len(prompts)
    seeds = list(range(n)) if seeds is None else list(seeds)
    if isinstance(negative_prompts, str):
        negative_prompts = [negative_prompts] * n
    dev = model.device
    noise = torch.stack([torch.randn(3, 32, 32, generator=torch.Generator().manual_seed(int(s))) for s in seeds])
    cond = model.get_learned_conditioning(prompts)
    neg = model.get_learned_conditioning(negative_prompts)
    empty = model.get_learned_conditioning([""] * n)
    flow = isinstance(model, ToyFlow)
    if flow:
        sigmas = flow_sample_sigmas(model, steps)
    else:
        sigmas, ts = _discrete_sigmas(model, steps)
    x = noise.to(dev) * sigmas[0]
    for i in range(steps):
        sigma = float(sigmas[i])
        unc = neg if i >= negative_start_step else empty
        ctx = {"c_crossattn": [torch.cat([cond, unc])]}
        if flow:  # the model returns x0 at the level itself
            x0_c, x0_u = model.apply_model(torch.cat([x, x]), torch.full((2 * n,), sigma, device=dev), ctx).chunk(2)
            denoised = x0_u + cfg_scale * (x0_c - x0_u)
        else:
            c_in = 1.0 / (sigma**2 + 1.0) ** 0.5
            tt = torch.full((2 * n,), float(ts[i]), device=dev)
            e_c, e_u = model.apply_model(torch.cat([x, x]) * c_in, tt, ctx).chunk(2)
            denoised = x - (e_u + cfg_scale * (e_c - e_u)) * sigma
        d = (x - denoised) / sigma
        x = x + d * (float(sigmas[i + 1]) - sigma)
    return x.clamp(-1, 1)
