"""Cheap, deterministic fake Stable Diffusion models with the interface the WebUI code uses.

``FakeSD1Model`` mirrors ldm's LatentDiffusion as patched by the WebUI (modules/sd_models.py, sd_hijack_clip.py);
``FakeSDXLModel`` mirrors sgm's DiffusionEngine as patched by modules/sd_models_xl.py. Every UNet call
(``apply_model``) is recorded in ``model.calls`` (a list of ``UNetCall``) so tests can see exactly which conditioning
each call got.

Text encoding imitates CLIP's shape behaviour: words/punctuation are tokens; each chunk holds 75 tokens and becomes 77
rows (BOS + 75 + EOS/padding); a batch is padded to its longest prompt with empty chunks; ``BREAK`` starts a new
chunk; ``(word:1.3)`` emphasis scales rows then restores the mean (the WebUI's "Original" emphasis). Row values
are a causal mix of hashed word embeddings, so padding rows carry prompt information like CLIP's.
"""

from __future__ import annotations

import contextlib
import hashlib
import math
import re
from dataclasses import dataclass
from typing import Any

import torch
from modules import prompt_parser, shared

CHUNK_TOKENS = 75
CHUNK_ROWS = 77


def sd_alphas_cumprod(n: int = 1000, linear_start: float = 0.00085, linear_end: float = 0.012) -> torch.Tensor:
    """alphas_cumprod of SD's 'scaled linear' beta schedule (ldm make_beta_schedule('linear')), float32."""
    betas = torch.linspace(linear_start**0.5, linear_end**0.5, n, dtype=torch.float64) ** 2
    return torch.cumprod(1.0 - betas, dim=0).to(torch.float32)


@dataclass
class CheckpointInfo:
    """mirrors sd_models.CheckpointInfo (the attributes processing/infotext read)."""

    filename: str
    title: str
    short_title: str
    name: str
    name_for_extra: str
    model_name: str
    hash: str
    shorthash: str
    sha256: str


@dataclass
class UNetCall:
    """One recorded apply_model call."""

    x_shape: tuple
    t: torch.Tensor
    """timesteps given to the UNet, [B] float (k-diffusion: fractional t of the sigma; DDIM/PLMS: the timestep)"""
    crossattn: torch.Tensor
    """cross-attention conditioning, [B, 77*k, D] (a copy)"""
    vector: torch.Tensor | None
    """SDXL 'vector' conditioning [B, V] (a copy), None for SD1"""
    c_concat_shape: tuple | None
    c_concat: torch.Tensor | None = None
    """the image conditioning an inpainting UNet got, [B, 5, h, w] (a copy; recorded by FakeSD1InpaintModel only)"""

    @property
    def batch_size(self) -> int:
        return self.x_shape[0]

    @property
    def tokens(self) -> int:
        return int(self.crossattn.shape[1])


class FakeTextEncoder:
    """Deterministic CLIP-like text encoder (see module docstring)."""

    def __init__(self, dim: int, seed: int, pad_with_eos: bool = True) -> None:
        self.dim = dim
        self.seed = seed
        self.pad_with_eos = pad_with_eos
        self._cache: dict[str, torch.Tensor] = {}
        g = torch.Generator().manual_seed(seed)
        self.pos = torch.randn(CHUNK_ROWS, dim, generator=g) * 0.1
        self.network_direction = torch.randn(dim, generator=g) * 0.3
        self.network_strength = 0.0
        """sum of the active LoRA multipliers (set by modules.extra_networks.activate): shifts every output row"""

    def word_embedding(self, word: str) -> torch.Tensor:
        e = self._cache.get(word)
        if e is None:
            h = int.from_bytes(hashlib.sha256(f"{self.seed}:{word}".encode()).digest()[:8], "little") % (2**63 - 1)
            e = torch.randn(self.dim, generator=torch.Generator().manual_seed(h))
            self._cache[word] = e
        return e

    @staticmethod
    def tokenize_weighted(text: str) -> list[list[tuple[str, float]]]:
        """Text -> list of chunks of (token, weight) (each chunk up to 75 tokens; BREAK starts a new chunk)."""
        chunks: list[list[tuple[str, float]]] = []
        current: list[tuple[str, float]] = []
        for part, weight in prompt_parser.parse_prompt_attention(text):
            if part == "BREAK" and weight == -1:
                chunks.append(current)
                current = []
                continue
            for tok in re.findall(r"\w+|[^\w\s]", part.lower()):
                if len(current) == CHUNK_TOKENS:
                    chunks.append(current)
                    current = []
                current.append((tok, float(weight)))
        if current or not chunks:
            chunks.append(current)
        return chunks

    def encode_chunk(self, chunk: list[tuple[str, float]]) -> torch.Tensor:
        pad = "<eos>" if self.pad_with_eos else "!"
        n_pad = CHUNK_ROWS - 2 - len(chunk)
        toks = ["<bos>"] + [t for t, _ in chunk] + ["<eos>"] + [pad] * n_pad
        weights = torch.tensor([1.0] + [w for _, w in chunk] + [1.0] * (CHUNK_ROWS - 1 - len(chunk)))
        e = torch.stack([self.word_embedding(t) for t in toks])
        cum = torch.cumsum(e, dim=0) / torch.arange(1, CHUNK_ROWS + 1)[:, None]
        z = torch.tanh(0.6 * e + 0.4 * cum + self.pos)
        skip = max(1, int(getattr(shared.opts, "CLIP_stop_at_last_layers", 1) or 1))
        if skip > 1:  # Clip skip: the output of an earlier layer, another function of the same tokens
            z = torch.tanh(1.3 * z - 0.1 * (skip - 1))
        if self.network_strength:
            z = z + self.network_strength * self.network_direction
        if bool((weights != 1.0).any()):
            original_mean = z.mean()
            z = z * weights[:, None]
            new_mean = z.mean()
            z = z * (original_mean / new_mean)
        return z

    def encode_batch(self, texts: list[str]) -> torch.Tensor:
        """[B, 77 * max_chunks, dim]; shorter prompts are padded with empty chunks (sd_hijack_clip behaviour)."""
        batch_chunks = [self.tokenize_weighted(t) for t in texts]
        n = max(len(c) for c in batch_chunks)
        out = []
        for chunks in batch_chunks:
            chunks = chunks + [[]] * (n - len(chunks))
            out.append(torch.cat([self.encode_chunk(c) for c in chunks], dim=0))
        return torch.stack(out)


class FakeDiffusionWrapper(torch.nn.Module):
    """mirrors ldm DiffusionWrapper: `model.model.conditioning_key`."""

    def __init__(self, conditioning_key: str) -> None:
        super().__init__()
        self.conditioning_key = conditioning_key


class FakeFirstStage(torch.nn.Module):
    """A fixed linear 'VAE': latent [B, C, h, w] <-> image [B, 3, h*f, w*f]."""

    def __init__(self, channels: int, factor: int, seed: int) -> None:
        super().__init__()
        g = torch.Generator().manual_seed(seed)
        self.dec = torch.randn(3, channels, generator=g) / math.sqrt(channels)
        self.enc = torch.linalg.pinv(self.dec)
        self.factor = factor
        self.dtype = torch.float32


class FakeSD1Model:
    """Fake SD1.x LatentDiffusion: eps-prediction UNet stand-in with recorded calls.

    UNet: eps = 0.1 * x + (0.5 + 0.5 t/1000) * tanh(mean_tokens(crossattn) @ W)[channel] * pattern(h, w).
    """

    is_sdxl = False
    is_sd1 = True
    is_sd2 = False
    is_sd3 = False
    is_ssd = False
    is_sdxl_inpaint = False
    parameterization = "eps"
    cond_stage_key = "txt"
    latent_channels = 4
    latent_scale_factor = 8
    used_config = "v1-inference.yaml"
    """the config the WebUI built the model from (sd_model.used_config): another config means another model object"""

    def __init__(self, dim: int = 32, seed: int = 0, name: str = "fake-sd1") -> None:
        self.dim = dim
        self.seed = seed
        self.alphas_cumprod = sd_alphas_cumprod()
        self.model = FakeDiffusionWrapper("crossattn")
        self.text_encoder = FakeTextEncoder(dim, seed + 1)
        self.first_stage_model = FakeFirstStage(self.latent_channels, self.latent_scale_factor, seed + 2)
        g = torch.Generator().manual_seed(seed + 3)
        self.w_cond = torch.randn(self._cond_feature_dim(), self.latent_channels, generator=g) * 2.0 / math.sqrt(dim)
        digest = hashlib.sha256(f"{name}:{seed}:{dim}".encode()).hexdigest()
        self.sd_model_hash = digest[:10]
        self.sd_checkpoint_info = CheckpointInfo(
            filename=f"/models/Stable-diffusion/{name}.safetensors",
            title=f"{name}.safetensors [{digest[:10]}]",
            short_title=f"{name} [{digest[:10]}]",
            name=f"{name}.safetensors",
            name_for_extra=name,
            model_name=name,
            hash=digest[:8],
            shorthash=digest[:10],
            sha256=digest,
        )
        self.sd_model_checkpoint = self.sd_checkpoint_info.filename
        self.calls: list[UNetCall] = []
        self.encode_calls: list[list[str]] = []
        """every get_learned_conditioning batch (as plain lists of strings)"""
        self._empty: torch.Tensor | None = None

    # --- conditioning -------------------------------------------------------------------------------------------
    def _cond_feature_dim(self) -> int:
        return self.dim

    def get_learned_conditioning(self, batch: list[str]) -> Any:
        """mirrors LatentDiffusion.get_learned_conditioning (via FrozenCLIPEmbedderWithCustomWords):
        [B, 77*k, dim]."""
        self.encode_calls.append([str(x) for x in batch])
        return self.text_encoder.encode_batch([str(x) for x in batch])

    @property
    def cond_stage_model_empty_prompt(self) -> torch.Tensor:
        """mirrors sd_models.get_empty_cond: encoding of [""] (a plain list, not a negative prompt), [1, 77, D]."""
        if self._empty is None:
            d = self.get_learned_conditioning([""])
            if isinstance(d, dict):
                d = d["crossattn"]
            self.encode_calls.pop()
            self._empty = d
        return self._empty

    # --- unet ---------------------------------------------------------------------------------------------------
    @staticmethod
    def _pattern(c: int, h: int, w: int) -> torch.Tensor:
        yy = torch.arange(h, dtype=torch.float32)[:, None]
        xx = torch.arange(w, dtype=torch.float32)[None, :]
        k = torch.arange(1, c + 1, dtype=torch.float32)[:, None, None]
        return 1.0 + 0.5 * torch.sin(k * (0.7 * yy + 0.3 * xx) / max(h, w) * math.pi)

    def _crossattn_and_vector(self, cond: Any) -> tuple[torch.Tensor, torch.Tensor | None, Any]:
        if isinstance(cond, dict) and "c_crossattn" in cond:
            ca = cond["c_crossattn"]
            ca = ca[0] if isinstance(ca, (list, tuple)) else ca
            return ca, None, cond.get("c_concat")
        raise TypeError(
            f"{type(self).__name__}.apply_model: unexpected cond {type(cond)} keys "
            f"{list(cond.keys()) if isinstance(cond, dict) else None}"
        )

    def apply_model(self, x_noisy: torch.Tensor, t: torch.Tensor, cond: Any, return_ids: bool = False):
        """mirrors LatentDiffusion.apply_model(x, t, cond) with cond {"c_crossattn": [tensor], "c_concat": [...]}."""
        ca, vector, c_concat = self._crossattn_and_vector(cond)
        if ca.shape[0] != x_noisy.shape[0]:
            raise RuntimeError(f"UNet batch mismatch: x has {x_noisy.shape[0]} items, conditioning has {ca.shape[0]}")
        if ca.shape[-1] != self._crossattn_dim():
            raise RuntimeError(f"UNet context dim mismatch: expected {self._crossattn_dim()}, got {ca.shape[-1]}")
        cc = None
        if c_concat is not None:
            cc0 = c_concat[0] if isinstance(c_concat, (list, tuple)) else c_concat
            cc = tuple(cc0.shape) if isinstance(cc0, torch.Tensor) else None
        self.calls.append(
            UNetCall(
                tuple(x_noisy.shape),
                t.detach().clone().float().reshape(-1),
                ca.detach().clone(),
                vector.detach().clone() if isinstance(vector, torch.Tensor) else None,
                cc,
            )
        )
        h = torch.tanh(self._pooled(ca) @ self.w_cond + self._vector_term(vector))  # [B, C]
        tt = (t.float().reshape(-1) / 1000.0)[:, None, None, None]
        b, c, hh, ww = x_noisy.shape
        return 0.1 * x_noisy + (0.5 + 0.5 * tt) * h[:, :, None, None] * self._pattern(c, hh, ww)[None]

    def _crossattn_dim(self) -> int:
        return self.dim

    def _pooled(self, ca: torch.Tensor) -> torch.Tensor:
        """Cross-attention's view of the text rows: their mean (repeating every row changes nothing)."""
        return ca.float().mean(dim=1)

    def _vector_term(self, vector: torch.Tensor | None) -> Any:
        return 0.0

    # --- first stage --------------------------------------------------------------------------------------------
    def decode_first_stage(self, z: torch.Tensor) -> torch.Tensor:
        """mirrors LatentDiffusion.decode_first_stage: latent -> image in [-1, 1]."""
        img = torch.tanh(torch.einsum("oc,bchw->bohw", self.first_stage_model.dec, z.float()))
        f = self.latent_scale_factor
        return img.repeat_interleave(f, dim=2).repeat_interleave(f, dim=3)

    def encode_first_stage(self, x: torch.Tensor) -> torch.Tensor:
        """mirrors LatentDiffusion.encode_first_stage (returns the latent directly, no distribution)."""
        f = self.latent_scale_factor
        pooled = torch.nn.functional.avg_pool2d(x.float(), f) if f > 1 else x.float()
        return torch.einsum("co,bohw->bchw", self.first_stage_model.enc, torch.atanh(pooled.clamp(-0.999, 0.999)))

    def get_first_stage_encoding(self, encoder_posterior: torch.Tensor) -> torch.Tensor:
        return encoder_posterior

    def ema_scope(self, context=None):
        return contextlib.nullcontext()

    # --- helpers for tests --------------------------------------------------------------------------------------
    def reset_calls(self) -> None:
        self.calls.clear()
        self.encode_calls.clear()

    def load_weights_from(self, checkpoint: FakeSD1Model) -> None:
        """Load another checkpoint's weights into this same object (what the WebUI's reload_model_weights does
        for a checkpoint of the same architecture): text encoder, UNet weights, hash and checkpoint info change,
        the Python object does not. The recorded calls stay."""
        for key, value in vars(checkpoint).items():
            if key not in ("calls", "encode_calls"):
                setattr(self, key, value)

    def sigma_of_t(self, t: torch.Tensor) -> torch.Tensor:
        """The k-diffusion sigma of a (fractional) timestep, as CompVisDenoiser.t_to_sigma computes it."""
        log_sigmas = (((1 - self.alphas_cumprod) / self.alphas_cumprod) ** 0.5).log()
        t = t.float()
        lo, hi, w = t.floor().long(), t.ceil().long(), t.frac()
        return ((1 - w) * log_sigmas[lo] + w * log_sigmas[hi]).exp()


class FakeSD1InpaintModel(FakeSD1Model):
    """Fake SD1.x inpainting checkpoint (sd-v1-5-inpainting style): ldm LatentDiffusion with conditioning key
    "hybrid", whose UNet takes 9 input channels: the 4 of the noisy latent concatenated with the 5 of ``c_concat``
    (the mask, then the latent of the masked image), which the WebUI builds in processing's
    inpainting_image_conditioning / txt2img_image_conditioning and passes through the CFG denoiser's image_cond.

    UNet: the SD1 fake's output plus a fixed linear mix of the 5 ``c_concat`` channels into the 4 output channels.
    A call without ``c_concat`` of shape [B, 5, h, w] matching the latent raises, like the real concatenation; each
    call's ``c_concat`` is recorded in ``model.calls[i].c_concat``."""

    concat_channels = 5
    used_config = "v1-inpainting-inference.yaml"

    def __init__(self, dim: int = 32, seed: int = 20, name: str = "fake-sd1-inpainting") -> None:
        super().__init__(dim=dim, seed=seed, name=name)
        self.model = FakeDiffusionWrapper("hybrid")
        g = torch.Generator().manual_seed(seed + 4)
        self.w_concat = torch.randn(self.latent_channels, self.concat_channels, generator=g) * 0.5

    def apply_model(self, x_noisy: torch.Tensor, t: torch.Tensor, cond: Any, return_ids: bool = False):
        _, _, c_concat = self._crossattn_and_vector(cond)
        cc = c_concat[0] if isinstance(c_concat, (list, tuple)) else c_concat
        expected = (x_noisy.shape[0], self.concat_channels, *x_noisy.shape[2:])
        if not isinstance(cc, torch.Tensor) or tuple(cc.shape) != expected:
            got = tuple(cc.shape) if isinstance(cc, torch.Tensor) else type(cc).__name__
            raise RuntimeError(f"inpainting UNet: c_concat must be {expected} to make 9 input channels, got {got}")
        eps = super().apply_model(x_noisy, t, cond, return_ids)
        self.calls[-1].c_concat = cc.detach().clone()
        return eps + torch.einsum("oc,bchw->bohw", self.w_concat, cc.float())


class FakeSDXLModel(FakeSD1Model):
    """Fake SDXL DiffusionEngine: get_learned_conditioning returns {"crossattn": [B, 77k, D], "vector": [B, V]};
    an all-empty negative batch encodes to zero crossattn and zero pooled part (size embeddings stay), like
    sd_models_xl.get_learned_conditioning with force_zero_embeddings=['txt']."""

    is_sdxl = True
    is_sd1 = False
    used_config = "sd_xl_base.yaml"
    size_embed_dim = 8
    """per-number Fourier embedding size (the real one is 256)"""

    def __init__(self, dim: int = 48, pooled_dim: int = 16, seed: int = 10, name: str = "fake-sdxl") -> None:
        self.pooled_dim = pooled_dim
        super().__init__(dim=dim, seed=seed, name=name)
        self.text_encoder_l = FakeTextEncoder(dim // 3, seed + 11)
        self.text_encoder_g = FakeTextEncoder(dim - dim // 3, seed + 12, pad_with_eos=False)
        g = torch.Generator().manual_seed(seed + 13)
        self.w_pool = torch.randn(dim - dim // 3, pooled_dim, generator=g) / math.sqrt(dim)
        self.w_vec = torch.randn(self.vector_dim, self.latent_channels, generator=g) * 0.5 / math.sqrt(self.vector_dim)

    @property
    def vector_dim(self) -> int:
        return self.pooled_dim + 6 * self.size_embed_dim

    def _size_embedding(self, values: list[float]) -> torch.Tensor:
        half = self.size_embed_dim // 2
        freqs = torch.exp(-math.log(10000) * torch.arange(half, dtype=torch.float32) / half)
        parts = []
        for v in values:
            args = v * freqs
            parts.append(torch.cat([torch.cos(args), torch.sin(args)]))
        return torch.cat(parts)

    def get_learned_conditioning(self, batch: list[str]) -> dict[str, torch.Tensor]:
        """mirrors sd_models_xl.get_learned_conditioning."""
        self.encode_calls.append([str(x) for x in batch])
        width = getattr(batch, "width", 1024) or 1024
        height = getattr(batch, "height", 1024) or 1024
        is_negative_prompt = getattr(batch, "is_negative_prompt", False)
        force_zero_negative_prompt = is_negative_prompt and all(x == "" for x in batch)
        texts = [str(x) for x in batch]
        crossattn, cg = self._text_rows(texts)
        eos_index = [min(1 + len(FakeTextEncoder.tokenize_weighted(t)[0]), CHUNK_ROWS - 1) for t in texts]
        pooled = torch.stack([torch.tanh(cg[i, j] @ self.w_pool) for i, j in enumerate(eos_index)])
        if force_zero_negative_prompt:
            crossattn = torch.zeros_like(crossattn)
            pooled = torch.zeros_like(pooled)
        sizes = self._size_embedding(self._embedded_numbers(width, height, is_negative_prompt))
        vector = torch.cat([pooled, sizes[None].repeat(len(texts), 1)], dim=1)
        return {"crossattn": crossattn, "vector": vector}

    def _text_rows(self, texts: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
        """The base's cross-attention rows (CLIP-L beside OpenCLIP-G) and the OpenCLIP-G rows the pooled part reads."""
        cl = self.text_encoder_l.encode_batch(texts)
        cg = self.text_encoder_g.encode_batch(texts)
        return torch.cat([cl, cg], dim=2), cg

    def _embedded_numbers(self, width: int, height: int, is_negative_prompt: bool) -> list[float]:
        """The numbers the base's vector embeds after the pooled text: original size, crop, target size."""
        return [height, width, shared.opts.sdxl_crop_top, shared.opts.sdxl_crop_left, height, width]

    def _crossattn_and_vector(self, cond: Any):
        if isinstance(cond, dict) and "crossattn" in cond:
            return cond["crossattn"], cond.get("vector"), cond.get("c_concat")
        raise TypeError(
            f"FakeSDXLModel.apply_model: expected an SDXL cond dict, got {type(cond)}"
            f" keys {list(cond.keys()) if isinstance(cond, dict) else None}"
        )

    def apply_model(self, x_noisy, t, cond, return_ids=False):
        """mirrors sd_models_xl.apply_model: self.model(x, t, cond) with cond {"crossattn", "vector", "c_concat"}."""
        if isinstance(cond, dict) and cond.get("vector") is not None and cond["vector"].shape[0] != x_noisy.shape[0]:
            raise RuntimeError("UNet batch mismatch in 'vector'")
        return super().apply_model(x_noisy, t, cond, return_ids)

    def _vector_term(self, vector: torch.Tensor | None) -> Any:
        return 0.0 if vector is None else vector.float() @ self.w_vec


class FakeSDXLRefinerModel(FakeSDXLModel):
    """Fake SDXL refiner (generative-models ``configs/inference/sd_xl_refiner.yaml``, as v1.10.1 loads it for a
    checkpoint with ``conditioner.embedders.0.model.ln_final.weight``): one text encoder, OpenCLIP-G, whose rows are
    the whole cross-attention (1280 wide in the real refiner, ``dim`` here) and whose pooled output starts the vector;
    the vector then embeds original size, crop and the aesthetic score (2560 wide in the real refiner, 2816 in the
    base). v1.10.1's sd_models_xl.get_learned_conditioning gives a negative prompt the low aesthetic score
    (``sdxl_refiner_low_aesthetic_score``) and any other prompt the high one, and zeroes the text part (rows and
    pooled) of an all-empty negative batch as in the base. Another architecture than the base: loading it (the refiner
    switch) builds a new model object (``sd_models.reload_model_weights``)."""

    used_config = "sd_xl_refiner.yaml"

    def __init__(self, dim: int = 32, pooled_dim: int = 16, seed: int = 40, name: str = "fake-sdxl-refiner") -> None:
        super().__init__(dim=dim, pooled_dim=pooled_dim, seed=seed, name=name)
        del self.text_encoder_l  # the refiner has no CLIP-L
        self.text_encoder_g = FakeTextEncoder(dim, seed + 12, pad_with_eos=False)
        g = torch.Generator().manual_seed(seed + 14)
        self.w_pool = torch.randn(dim, pooled_dim, generator=g) / math.sqrt(dim)
        self.w_vec = torch.randn(self.vector_dim, self.latent_channels, generator=g) * 0.5 / math.sqrt(self.vector_dim)

    @property
    def vector_dim(self) -> int:
        return self.pooled_dim + 5 * self.size_embed_dim

    def _text_rows(self, texts: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
        cg = self.text_encoder_g.encode_batch(texts)
        return cg, cg

    def _embedded_numbers(self, width: int, height: int, is_negative_prompt: bool) -> list[float]:
        opts = shared.opts
        score = opts.sdxl_refiner_low_aesthetic_score if is_negative_prompt else opts.sdxl_refiner_high_aesthetic_score
        return [height, width, opts.sdxl_crop_top, opts.sdxl_crop_left, score]

    def _vector_term(self, vector: torch.Tensor | None) -> Any:
        if vector is not None and vector.shape[-1] != self.vector_dim:
            raise RuntimeError(f"refiner UNet: vector must be {self.vector_dim} wide, got {vector.shape[-1]}")
        return super()._vector_term(vector)
