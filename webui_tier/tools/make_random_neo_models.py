#!/usr/bin/env python3
"""Write random-weight, size-reduced checkpoints that Forge Neo 2.6 loads.

The files exist only to drive Neo's real code paths (checkpoint detection,
module selection, text encoding, conditioning, sampling with CFG, VAE decode)
on a CPU-only machine.  Every image they produce is noise.

Sub-commands
------------
  build ARCH [ARCH ...]   write the files for chroma, qwen, wan, flux, zimage,
                          lumina (or "all") into <webui>/models/... and patch
                          the fixture's bundled configs that Neo builds the
                          small components (T5/UMT5/CLIP-L/VAE) from.
  restore-configs         put the original bundled configs back.
  verify-load ARCH ...    stage 1: load the files with Neo's own forge_loader
                          (run with Neo's venv python) and print the
                          conditioning produced for "a cat" and for an empty
                          negative prompt.
  verify-api ARCH ...     stage 2: against a running Neo server, select the
                          checkpoint + modules through /sdapi/v1/options and
                          run a 64x64 txt2img; prints timing.

How the sizes are chosen (see neo_models.md next to this file for details):

* Dimensions that Neo derives from state-dict shapes (block counts, Wan's
  width/FFN, Lumina's caption width, ...) are simply made small.
* Dimensions that Neo reads from a bundled ``config.json`` without checking
  them against anything (T5/UMT5 encoder, CLIP-L, both VAE families) are made
  small by writing a reduced copy of that config into the fixture tree
  (the original is kept as ``config.json.neo-orig``).
* Dimensions that Neo hard-codes in Python (Flux/Chroma width 3072, Qwen-Image
  width 3072 / text width 3584, Lumina 2304, Z-Image 3840, and the complete
  Qwen2.5-VL-7B / Gemma2-2B / Qwen3-4B text encoders, whose config.json is
  asserted equal to built-in dataclasses) keep their interface sizes.  Only
  widths that never leave a pair of Linear layers (MLP hidden sizes, the
  transformer's text-input projection) are shrunk: Neo's lazy
  ``ForgeOperations.Linear`` takes whatever weight shape the file holds.
  The LLM text encoders additionally store their attention projections as
  rank-1 products (``weight`` (out,1) x ``scale_weight`` (1,in), which Neo's
  scaled-fp8 code path multiplies out before each matmul); ``--llm-attention
  full`` writes ordinary full matrices instead (about 2.5x bigger files).
  These files are stored in float8_e4m3fn, which Neo detects and keeps as its
  storage dtype (computation is float32 on CPU).

Requires torch and safetensors (the verify-* sub-commands need Neo's venv).
"""

from __future__ import annotations

import argparse
import base64
import io
import json
import math
import os
import shutil
import sys
import time
from collections import OrderedDict
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

DEFAULT_WEBUI = Path("/root/neo-fixture/webui")
ARCHS = ("chroma", "qwen", "wan", "flux", "zimage", "lumina")
BACKUP_SUFFIX = ".neo-orig"
FILE_PREFIX = "neo-random-"

# ---------------------------------------------------------------------------
# small settings that the generated files and the patched configs share
# ---------------------------------------------------------------------------

# T5-XXL stand-in (Chroma, Flux).  Neo builds it from the bundled config.
# Two blocks: Neo refuses a T5 state dict with 16 tensors or fewer.
T5_CFG = dict(d_model=256, num_heads=4, d_kv=64, d_ff=512, num_layers=2, num_decoder_layers=2)
T5_VOCAB = 32128  # must cover the tokenizer (ids up to 32099)
# UMT5-XXL stand-in (Wan).  The vocabulary must stay 256384 rows: Neo tells
# UMT5 from T5 by exactly that row count when a text-encoder file is selected.
UMT5_CFG = dict(d_model=128, num_heads=2, d_kv=64, d_ff=256, num_layers=2, num_decoder_layers=2)
UMT5_VOCAB = 256384
# CLIP-L stand-in (Flux).  Width 768 is kept: Neo recognises a separate CLIP-L
# file by a 768-wide layer_norm1.bias, and Flux's vector_in reads 768.
CLIP_CFG = dict(num_hidden_layers=1, intermediate_size=256)
CLIP_VOCAB, CLIP_POSITIONS, CLIP_WIDTH = 49408, 77, 768
# AutoencoderKL (Flux/Chroma/Lumina/Z-Image, 16 latent channels, /8).
AE_CFG = dict(block_out_channels=[32, 32, 32, 32], layers_per_block=1)
# Wan 2.1 VAE (Wan, Qwen-Image; 16 latent channels, /8 spatial, /4 temporal).
WAN_VAE_CFG = dict(base_dim=16, num_res_blocks=1)

# Neo-hard-coded interface sizes (kept as they are).
FLUX_WIDTH, FLUX_HEADS = 3072, 24
CHROMA_APPROX_WIDTH, CHROMA_APPROX_LAYERS = 5120, 5
QWEN_WIDTH, QWEN_TEXT_WIDTH = 3072, 3584
QWEN_TE = dict(vocab=152064, hidden=3584, layers=28, heads=28, kv_heads=4, head_dim=128)
GEMMA_TE = dict(vocab=256000, hidden=2304, layers=26, heads=8, kv_heads=4, head_dim=256)
QWEN3_TE = dict(vocab=151936, hidden=2560, layers=36, heads=32, kv_heads=8, head_dim=128)

# bundled configs that the build patches, relative to backend/huggingface
CONFIG_PATCHES: dict[str, list[tuple[str, dict]]] = {
    "t5": [
        ("Chroma/text_encoder/config.json", T5_CFG),
        ("black-forest-labs/FLUX.1-dev/text_encoder_2/config.json", T5_CFG),
    ],
    "umt5": [
        ("Wan-AI/Wan2.1-T2V-14B/text_encoder/config.json", UMT5_CFG),
        ("Wan-AI/Wan2.1-I2V-14B/text_encoder/config.json", UMT5_CFG),
    ],
    "clip_l": [("black-forest-labs/FLUX.1-dev/text_encoder/config.json", CLIP_CFG)],
    "ae": [
        ("Chroma/vae/config.json", AE_CFG),
        ("black-forest-labs/FLUX.1-dev/vae/config.json", AE_CFG),
        ("neta-art/Neta-Lumina/vae/config.json", AE_CFG),
        ("Tongyi-MAI/Z-Image-Turbo/vae/config.json", AE_CFG),
    ],
    "wan_vae": [
        ("Wan-AI/Wan2.1-T2V-14B/vae/config.json", WAN_VAE_CFG),
        ("Wan-AI/Wan2.1-I2V-14B/vae/config.json", WAN_VAE_CFG),
        ("Qwen/Qwen-Image/vae/config.json", WAN_VAE_CFG),
    ],
}

# which shared components (and config patches) each architecture uses
ARCH_PARTS: dict[str, list[str]] = {
    "chroma": ["t5", "ae"],
    "flux": ["t5", "clip_l", "ae"],
    "qwen": ["qwen25vl", "wan_vae"],
    "wan": ["umt5", "wan_vae"],
    "zimage": ["qwen3", "ae"],
    "lumina": ["gemma2", "ae"],
}

PART_FILES: dict[str, tuple[str, str]] = {
    # part -> (models sub-folder, file name)
    "t5": ("text_encoder", FILE_PREFIX + "t5xxl.safetensors"),
    "umt5": ("text_encoder", FILE_PREFIX + "umt5xxl.safetensors"),
    "clip_l": ("text_encoder", FILE_PREFIX + "clip-l.safetensors"),
    "qwen25vl": ("text_encoder", FILE_PREFIX + "qwen25vl-7b.safetensors"),
    "gemma2": ("text_encoder", FILE_PREFIX + "gemma2-2b.safetensors"),
    "qwen3": ("text_encoder", FILE_PREFIX + "qwen3-4b.safetensors"),
    "ae": ("VAE", FILE_PREFIX + "ae-f8c16.safetensors"),
    "wan_vae": ("VAE", FILE_PREFIX + "wan21-vae.safetensors"),
}

CHECKPOINT_FILES: dict[str, str] = {a: FILE_PREFIX + a + ".safetensors" for a in ARCHS}

# sampler/scheduler/shift of Neo's UI preset for each architecture
# (modules_forge/presets.py: Chroma uses the "flux" preset, Z-Image the
# "lumina" one).  Z-Image keeps its own shift 3.0 instead of the preset's 6.0.
# cfg_scale 4 everywhere so that the negative prompt is really used.
API_DEFAULTS: dict[str, dict] = {
    "chroma": dict(sampler_name="Euler", scheduler="Beta", cfg_scale=4.0),
    "flux": dict(sampler_name="Euler", scheduler="Beta", cfg_scale=4.0, distilled_cfg_scale=3.0),
    "qwen": dict(sampler_name="LCM", scheduler="Normal", cfg_scale=4.0),
    "wan": dict(sampler_name="Euler", scheduler="Simple", cfg_scale=4.0, distilled_cfg_scale=8.0),
    "zimage": dict(sampler_name="Res Multistep", scheduler="Linear Quadratic", cfg_scale=4.0, distilled_cfg_scale=3.0),
    "lumina": dict(sampler_name="Res Multistep", scheduler="Linear Quadratic", cfg_scale=4.0, distilled_cfg_scale=6.0),
}


# ---------------------------------------------------------------------------
# random tensor factory
# ---------------------------------------------------------------------------


@dataclass
class Options:
    seed: int = 1234
    mlp_hidden: int = 256  # hidden width of MLPs inside Neo-hard-coded models
    llm_mlp_hidden: int = 64  # same, for the 28/26/36-layer LLM text encoders
    llm_attention: str = "rank1"  # "rank1" or "full"
    flux_double: int = 1
    flux_single: int = 1
    chroma_double: int = 1
    chroma_single: int = 1
    qwen_layers: int = 1
    wan_dim: int = 256
    wan_ffn: int = 512
    wan_layers: int = 2
    lumina_layers: int = 1
    zimage_layers: int = 1
    big_dtype: str = "fp8"  # dtype of the files for Neo-hard-coded-width models
    small_dtype: str = "bf16"


class Factory:
    """Builds an ordered state dict of random tensors in one storage dtype."""

    def __init__(self, torch_mod, seed: int, dtype_name: str) -> None:
        self.torch = torch_mod
        self.gen = torch_mod.Generator().manual_seed(seed)
        self.dtype = resolve_dtype(torch_mod, dtype_name)
        self.sd: OrderedDict[str, object] = OrderedDict()

    # -- primitives -------------------------------------------------------
    def _store(self, name: str, t) -> None:
        if name in self.sd:
            raise KeyError(f"duplicate tensor {name}")
        self.sd[name] = t.to(self.dtype).contiguous()

    def normal(self, name: str, shape: Iterable[int], std: float, mean: float = 0.0) -> None:
        t = self.torch.empty(tuple(shape), dtype=self.torch.float32)
        t.normal_(mean=mean, std=std, generator=self.gen)
        self._store(name, t)

    def const(self, name: str, shape: Iterable[int], value: float) -> None:
        self._store(name, self.torch.full(tuple(shape), float(value), dtype=self.torch.float32))

    # -- layers -----------------------------------------------------------
    def linear(self, name: str, out_f: int, in_f: int, bias: bool = True, gain: float = 1.0) -> None:
        self.normal(f"{name}.weight", (out_f, in_f), gain / math.sqrt(in_f))
        if bias:
            self.normal(f"{name}.bias", (out_f,), 0.02)

    def linear_rank1(self, name: str, out_f: int, in_f: int, bias: bool, gain: float = 1.0) -> None:
        """A full (out, in) weight expressed as weight (out,1) * scale_weight (1,in).

        Neo multiplies ``weight * scale_weight`` before every matmul (the
        scaled-fp8 path), and broadcasting turns that into a rank-1 matrix.
        """
        self.normal(f"{name}.weight", (out_f, 1), gain / math.sqrt(in_f) ** 0.5)
        self.normal(f"{name}.scale_weight", (1, in_f), 1.0 / math.sqrt(in_f) ** 0.5)
        if bias:
            self.normal(f"{name}.bias", (out_f,), 0.02)

    def conv(
        self, name: str, out_c: int, in_c: int, kernel: tuple[int, ...], bias: bool = True, gain: float = 1.0
    ) -> None:
        fan_in = in_c * math.prod(kernel)
        self.normal(f"{name}.weight", (out_c, in_c, *kernel), gain / math.sqrt(fan_in))
        if bias:
            self.normal(f"{name}.bias", (out_c,), 0.02)

    def norm(self, name: str, dim: int, bias: bool = False, key: str = "weight", value: float = 1.0) -> None:
        self.const(f"{name}.{key}", (dim,), value)
        if bias:
            self.const(f"{name}.bias", (dim,), 0.0)

    def embedding(self, name: str, rows: int, dim: int, std: float = 1.0) -> None:
        # generated in row chunks so that a 256k x 4096 table never needs a
        # second full-size float32 copy
        out = self.torch.empty((rows, dim), dtype=self.dtype)
        step = max(1, (1 << 24) // max(dim, 1))
        for s in range(0, rows, step):
            e = min(rows, s + step)
            chunk = self.torch.empty((e - s, dim), dtype=self.torch.float32)
            chunk.normal_(0.0, std, generator=self.gen)
            out[s:e] = chunk.to(self.dtype)
        if name in self.sd:
            raise KeyError(name)
        self.sd[name] = out


def resolve_dtype(torch_mod, name: str):
    table = {
        "fp8": torch_mod.float8_e4m3fn,
        "bf16": torch_mod.bfloat16,
        "fp16": torch_mod.float16,
        "fp32": torch_mod.float32,
    }
    if name not in table:
        raise SystemExit(f"unknown dtype {name!r}; use one of {sorted(table)}")
    return table[name]


# ---------------------------------------------------------------------------
# component builders (key layouts follow the public checkpoint formats that
# Neo 2.6 reads; shapes are the reduced ones described above)
# ---------------------------------------------------------------------------


def build_t5(f: Factory, cfg: dict, vocab: int, umt5: bool) -> None:
    """T5 / UMT5 encoder in the layout of t5xxl_fp16.safetensors / umt5_xxl.safetensors."""
    d, heads, d_ff, layers = cfg["d_model"], cfg["num_heads"], cfg["d_ff"], cfg["num_layers"]
    f.embedding("shared.weight", vocab, d, std=1.0)
    for i in range(layers):
        p = f"encoder.block.{i}.layer"
        for proj in ("q", "k", "v"):
            f.linear(f"{p}.0.SelfAttention.{proj}", d, d, bias=False)
        f.linear(f"{p}.0.SelfAttention.o", d, d, bias=False, gain=1.0 / math.sqrt(2 * layers))
        if umt5 or i == 0:  # UMT5 has a relative bias table in every block
            f.normal(f"{p}.0.SelfAttention.relative_attention_bias.weight", (32, heads), 0.1)
        f.norm(f"{p}.0.layer_norm", d)
        f.linear(f"{p}.1.DenseReluDense.wi_0", d_ff, d, bias=False)
        f.linear(f"{p}.1.DenseReluDense.wi_1", d_ff, d, bias=False)
        f.linear(f"{p}.1.DenseReluDense.wo", d, d_ff, bias=False, gain=1.0 / math.sqrt(2 * layers))
        f.norm(f"{p}.1.layer_norm", d)
    f.norm("encoder.final_layer_norm", d)


def build_clip_l(f: Factory) -> None:
    """CLIP-L text model in Hugging Face layout (clip_l.safetensors)."""
    w, layers, inter = CLIP_WIDTH, CLIP_CFG["num_hidden_layers"], CLIP_CFG["intermediate_size"]
    p = "text_model"
    f.normal(f"{p}.embeddings.token_embedding.weight", (CLIP_VOCAB, w), 0.02)
    f.normal(f"{p}.embeddings.position_embedding.weight", (CLIP_POSITIONS, w), 0.01)
    for i in range(layers):
        q = f"{p}.encoder.layers.{i}"
        for proj in ("q_proj", "k_proj", "v_proj", "out_proj"):
            f.linear(f"{q}.self_attn.{proj}", w, w)
        f.norm(f"{q}.layer_norm1", w, bias=True)
        f.linear(f"{q}.mlp.fc1", inter, w)
        f.linear(f"{q}.mlp.fc2", w, inter)
        f.norm(f"{q}.layer_norm2", w, bias=True)
    f.norm(f"{p}.final_layer_norm", w, bias=True)
    # present in the usual clip_l.safetensors; Flux does not use it
    f.linear("text_projection", w, w, bias=False)


def build_llm(f: Factory, spec: dict, kind: str, mlp_hidden: int, attention: str) -> None:
    """Qwen2.5-VL-7B / Gemma2-2B / Qwen3-4B language model in HF layout.

    Vocabulary, width, head layout and the layer count are Neo-hard-coded
    (its config.json is asserted equal to built-in dataclasses); only the MLP
    hidden width is reduced (it never leaves the MLP), and with
    attention="rank1" the q/k/v/o projections are stored as rank-1 factors.
    """
    hidden, layers = spec["hidden"], spec["layers"]
    q_out = spec["heads"] * spec["head_dim"]
    kv_out = spec["kv_heads"] * spec["head_dim"]
    qkv_bias = kind == "qwen25vl"
    gemma = kind == "gemma2"
    norm_value = 0.0 if gemma else 1.0  # Gemma's RMSNorm multiplies by (1 + w)
    res_gain = 1.0 / math.sqrt(2 * layers)
    lin = f.linear_rank1 if attention == "rank1" else f.linear
    f.embedding("model.embed_tokens.weight", spec["vocab"], hidden, std=0.02 if gemma else 1.0)
    for i in range(layers):
        p = f"model.layers.{i}"
        lin(f"{p}.self_attn.q_proj", q_out, hidden, bias=qkv_bias)
        lin(f"{p}.self_attn.k_proj", kv_out, hidden, bias=qkv_bias)
        lin(f"{p}.self_attn.v_proj", kv_out, hidden, bias=qkv_bias)
        lin(f"{p}.self_attn.o_proj", hidden, q_out, bias=False, gain=res_gain)
        if kind == "qwen3":
            f.norm(f"{p}.self_attn.q_norm", spec["head_dim"])
            f.norm(f"{p}.self_attn.k_norm", spec["head_dim"])
        f.linear(f"{p}.mlp.gate_proj", mlp_hidden, hidden, bias=False)
        f.linear(f"{p}.mlp.up_proj", mlp_hidden, hidden, bias=False)
        f.linear(f"{p}.mlp.down_proj", hidden, mlp_hidden, bias=False, gain=res_gain)
        f.norm(f"{p}.input_layernorm", hidden, value=norm_value)
        f.norm(f"{p}.post_attention_layernorm", hidden, value=norm_value)
        if gemma:
            f.norm(f"{p}.pre_feedforward_layernorm", hidden, value=norm_value)
            f.norm(f"{p}.post_feedforward_layernorm", hidden, value=norm_value)
    f.norm("model.norm", hidden, value=norm_value)


def build_ldm_vae(f: Factory, channels: list[int], num_res: int, z: int = 16) -> None:
    """AutoencoderKL in the original (ldm / ae.safetensors) layout."""

    def resnet(p: str, cin: int, cout: int) -> None:
        f.norm(f"{p}.norm1", cin, bias=True)
        f.conv(f"{p}.conv1", cout, cin, (3, 3))
        f.norm(f"{p}.norm2", cout, bias=True)
        f.conv(f"{p}.conv2", cout, cout, (3, 3), gain=0.5)
        if cin != cout:
            f.conv(f"{p}.nin_shortcut", cout, cin, (1, 1))

    def mid(p: str, c: int) -> None:
        resnet(f"{p}.mid.block_1", c, c)
        f.norm(f"{p}.mid.attn_1.norm", c, bias=True)
        for n in ("q", "k", "v", "proj_out"):
            f.conv(f"{p}.mid.attn_1.{n}", c, c, (1, 1))
        resnet(f"{p}.mid.block_2", c, c)

    last = channels[-1]
    f.conv("encoder.conv_in", channels[0], 3, (3, 3))
    cin = channels[0]
    for i, c in enumerate(channels):
        for j in range(num_res):
            resnet(f"encoder.down.{i}.block.{j}", cin, c)
            cin = c
        if i != len(channels) - 1:
            f.conv(f"encoder.down.{i}.downsample.conv", c, c, (3, 3))
    mid("encoder", last)
    f.norm("encoder.norm_out", last, bias=True)
    f.conv("encoder.conv_out", 2 * z, last, (3, 3))

    f.conv("decoder.conv_in", last, z, (3, 3))
    mid("decoder", last)
    cin = last
    for i in reversed(range(len(channels))):
        c = channels[i]
        for j in range(num_res + 1):
            resnet(f"decoder.up.{i}.block.{j}", cin, c)
            cin = c
        if i != 0:
            f.conv(f"decoder.up.{i}.upsample.conv", c, c, (3, 3))
    f.norm("decoder.norm_out", channels[0], bias=True)
    f.conv("decoder.conv_out", 3, channels[0], (3, 3))


def build_wan_vae(
    f: Factory,
    base: int,
    num_res: int,
    z: int = 16,
    mult: tuple[int, ...] = (1, 2, 4, 4),
    temporal_down: tuple[bool, ...] = (False, True, True),
) -> None:
    """Wan 2.1 VAE in the layout of Wan2.1_VAE.pth / wan_2.1_vae.safetensors."""

    def residual(p: str, cin: int, cout: int) -> None:
        f.const(f"{p}.residual.0.gamma", (cin, 1, 1, 1), 1.0)
        f.conv(f"{p}.residual.2", cout, cin, (3, 3, 3))
        f.const(f"{p}.residual.3.gamma", (cout, 1, 1, 1), 1.0)
        f.conv(f"{p}.residual.6", cout, cout, (3, 3, 3), gain=0.5)
        if cin != cout:
            f.conv(f"{p}.shortcut", cout, cin, (1, 1, 1))

    def middle(p: str, c: int) -> None:
        residual(f"{p}.middle.0", c, c)
        f.const(f"{p}.middle.1.norm.gamma", (c, 1, 1), 1.0)
        f.conv(f"{p}.middle.1.to_qkv", 3 * c, c, (1, 1))
        f.conv(f"{p}.middle.1.proj", c, c, (1, 1))
        residual(f"{p}.middle.2", c, c)

    dims = [base * m for m in (1, *mult)]
    f.conv("encoder.conv1", dims[0], 3, (3, 3, 3))
    idx = 0
    for i, (cin, cout) in enumerate(zip(dims[:-1], dims[1:], strict=False)):
        for _ in range(num_res):
            residual(f"encoder.downsamples.{idx}", cin, cout)
            cin = cout
            idx += 1
        if i != len(mult) - 1:
            f.conv(f"encoder.downsamples.{idx}.resample.1", cout, cout, (3, 3))
            if temporal_down[i]:
                f.conv(f"encoder.downsamples.{idx}.time_conv", cout, cout, (3, 1, 1))
            idx += 1
    middle("encoder", dims[-1])
    f.const("encoder.head.0.gamma", (dims[-1], 1, 1, 1), 1.0)
    f.conv("encoder.head.2", 2 * z, dims[-1], (3, 3, 3))
    f.conv("conv1", 2 * z, 2 * z, (1, 1, 1))
    f.conv("conv2", z, z, (1, 1, 1))

    ddims = [base * m for m in (mult[-1], *mult[::-1])]
    temporal_up = temporal_down[::-1]
    f.conv("decoder.conv1", ddims[0], z, (3, 3, 3))
    middle("decoder", ddims[0])
    idx = 0
    for i, (cin, cout) in enumerate(zip(ddims[:-1], ddims[1:], strict=False)):
        if i in (1, 2, 3):  # the previous upsample halved the channels
            cin //= 2
        for _ in range(num_res + 1):
            residual(f"decoder.upsamples.{idx}", cin, cout)
            cin = cout
            idx += 1
        if i != len(mult) - 1:
            f.conv(f"decoder.upsamples.{idx}.resample.1", cout // 2, cout, (3, 3))
            if temporal_up[i]:
                f.conv(f"decoder.upsamples.{idx}.time_conv", cout * 2, cout, (3, 1, 1))
            idx += 1
    f.const("decoder.head.0.gamma", (ddims[-1], 1, 1, 1), 1.0)
    f.conv("decoder.head.2", 3, ddims[-1], (3, 3, 3))


def build_flux_like(f: Factory, opt: Options, chroma: bool, context_dim: int) -> None:
    """Flux.1-dev / Chroma transformer in the original BFL layout (no prefix)."""
    w, head_dim, r = FLUX_WIDTH, FLUX_WIDTH // FLUX_HEADS, opt.mlp_hidden
    double = opt.chroma_double if chroma else opt.flux_double
    single = opt.chroma_single if chroma else opt.flux_single
    if double < 1:
        raise SystemExit("Neo recognises Flux/Chroma by double_blocks.0.*; keep at least one double block")
    latent_in = 64  # 16 latent channels x 2x2 patch
    f.linear("img_in", w, latent_in)
    if chroma:
        a = CHROMA_APPROX_WIDTH
        f.linear("distilled_guidance_layer.in_proj", a, 64)
        for i in range(CHROMA_APPROX_LAYERS):
            f.linear(f"distilled_guidance_layer.layers.{i}.in_layer", r, a)
            f.linear(f"distilled_guidance_layer.layers.{i}.out_layer", a, r, gain=0.5)
            f.norm(f"distilled_guidance_layer.norms.{i}", a, key="scale")
        f.linear("distilled_guidance_layer.out_proj", w, a)
    else:
        for emb, fan_in in (("time_in", 256), ("vector_in", CLIP_WIDTH), ("guidance_in", 256)):
            f.linear(f"{emb}.in_layer", w, fan_in)
            f.linear(f"{emb}.out_layer", w, w)
    f.linear("txt_in", w, context_dim)
    for i in range(double):
        p = f"double_blocks.{i}"
        for s in ("img", "txt"):
            if not chroma:
                f.linear(f"{p}.{s}_mod.lin", 6 * w, w)
            f.linear(f"{p}.{s}_attn.qkv", 3 * w, w)
            f.norm(f"{p}.{s}_attn.norm.query_norm", head_dim, key="scale")
            f.norm(f"{p}.{s}_attn.norm.key_norm", head_dim, key="scale")
            f.linear(f"{p}.{s}_attn.proj", w, w, gain=0.5)
            f.linear(f"{p}.{s}_mlp.0", r, w)
            f.linear(f"{p}.{s}_mlp.2", w, r, gain=0.5)
    for i in range(single):
        p = f"single_blocks.{i}"
        f.linear(f"{p}.linear1", 3 * w + 4 * w, w)
        f.linear(f"{p}.linear2", w, w + 4 * w, gain=0.5)
        f.norm(f"{p}.norm.query_norm", head_dim, key="scale")
        f.norm(f"{p}.norm.key_norm", head_dim, key="scale")
        if not chroma:
            f.linear(f"{p}.modulation.lin", 3 * w, w)
    # zero-initialised in the real models; small random here so text matters
    f.linear("final_layer.linear", latent_in, w, gain=0.5)
    if not chroma:
        f.linear("final_layer.adaLN_modulation.1", 2 * w, w)


def build_qwen_image(f: Factory, opt: Options) -> None:
    """Qwen-Image transformer in diffusers layout (qwen_image_*.safetensors)."""
    w, r = QWEN_WIDTH, opt.mlp_hidden
    f.linear("time_text_embed.timestep_embedder.linear_1", w, 256)
    f.linear("time_text_embed.timestep_embedder.linear_2", w, w)
    f.norm("txt_norm", QWEN_TEXT_WIDTH)
    f.linear("img_in", w, 64)
    f.linear("txt_in", w, QWEN_TEXT_WIDTH)
    for i in range(opt.qwen_layers):
        p = f"transformer_blocks.{i}"
        for s in ("img", "txt"):
            f.linear(f"{p}.{s}_mod.1", 6 * w, w)
            f.linear(f"{p}.{s}_mlp.net.0.proj", r, w)
            f.linear(f"{p}.{s}_mlp.net.2", w, r, gain=0.5)
        for n in ("norm_q", "norm_k", "norm_added_q", "norm_added_k"):
            f.norm(f"{p}.attn.{n}", 128)
        for n in ("to_q", "to_k", "to_v", "add_q_proj", "add_k_proj", "add_v_proj"):
            f.linear(f"{p}.attn.{n}", w, w)
        f.linear(f"{p}.attn.to_out.0", w, w, gain=0.5)
        f.linear(f"{p}.attn.to_add_out", w, w, gain=0.5)
    f.linear("norm_out.linear", 2 * w, w)
    f.linear("proj_out", 64, w, gain=0.5)


def build_wan(f: Factory, opt: Options, text_dim: int) -> None:
    """Wan 2.1 T2V transformer in the original layout (wan2.1_t2v_*.safetensors)."""
    d, ffn = opt.wan_dim, opt.wan_ffn
    if d % 128:
        raise SystemExit("Neo derives Wan's head count as dim // 128; --wan-dim must be a multiple of 128")
    f.conv("patch_embedding", d, 16, (1, 2, 2))
    f.linear("text_embedding.0", d, text_dim)
    f.linear("text_embedding.2", d, d)
    f.linear("time_embedding.0", d, 256)
    f.linear("time_embedding.2", d, d)
    f.linear("time_projection.1", 6 * d, d)
    for i in range(opt.wan_layers):
        p = f"blocks.{i}"
        f.normal(f"{p}.modulation", (1, 6, d), 1.0 / math.sqrt(d))
        for a in ("self_attn", "cross_attn"):
            for n in ("q", "k", "v"):
                f.linear(f"{p}.{a}.{n}", d, d)
            f.linear(f"{p}.{a}.o", d, d, gain=0.5)
            f.norm(f"{p}.{a}.norm_q", d)
            f.norm(f"{p}.{a}.norm_k", d)
        f.norm(f"{p}.norm3", d, bias=True)
        f.linear(f"{p}.ffn.0", ffn, d)
        f.linear(f"{p}.ffn.2", d, ffn, gain=0.5)
    f.normal("head.modulation", (1, 2, d), 1.0 / math.sqrt(d))
    f.linear("head.head", 16 * 4, d, gain=0.5)


def build_nextdit(f: Factory, opt: Options, zimage: bool) -> None:
    """Lumina 2 (Neta-Lumina) / Z-Image NextDiT in ComfyUI layout."""
    if zimage:
        dim, heads, kv_heads, cap, layers = 3840, 30, 30, QWEN3_TE["hidden"], opt.zimage_layers
    else:
        dim, heads, kv_heads, cap, layers = 2304, 24, 8, GEMMA_TE["hidden"], opt.lumina_layers
    hd, r = dim // heads, opt.mlp_hidden
    t_width = min(dim, 1024)
    mod_in = 256 if zimage else t_width

    def block(p: str, modulation: bool) -> None:
        f.linear(f"{p}.attention.qkv", (heads + 2 * kv_heads) * hd, dim, bias=False)
        f.linear(f"{p}.attention.out", dim, heads * hd, bias=False, gain=0.5)
        f.norm(f"{p}.attention.q_norm", hd)
        f.norm(f"{p}.attention.k_norm", hd)
        f.linear(f"{p}.feed_forward.w1", r, dim, bias=False)
        f.linear(f"{p}.feed_forward.w2", dim, r, bias=False, gain=0.5)
        f.linear(f"{p}.feed_forward.w3", r, dim, bias=False)
        for n in ("attention_norm1", "ffn_norm1", "attention_norm2", "ffn_norm2"):
            f.norm(f"{p}.{n}", dim)
        if modulation:
            f.linear(f"{p}.adaLN_modulation.{0 if zimage else 1}", 4 * dim, mod_in, gain=0.5)

    if zimage:
        f.normal("x_pad_token", (1, dim), 0.02)
        f.normal("cap_pad_token", (1, dim), 0.02)
    f.linear("x_embedder", dim, 64)
    for i in range(2):
        block(f"noise_refiner.{i}", True)
    for i in range(2):
        block(f"context_refiner.{i}", False)
    f.linear("t_embedder.mlp.0", t_width, 256)
    f.linear("t_embedder.mlp.2", 256 if zimage else t_width, t_width)
    f.norm("cap_embedder.0", cap)
    f.linear("cap_embedder.1", dim, cap)
    for i in range(layers):
        block(f"layers.{i}", True)
    f.norm("norm_final", dim)
    f.linear("final_layer.linear", 64, dim, gain=0.5)
    f.linear("final_layer.adaLN_modulation.1", dim, mod_in)


# ---------------------------------------------------------------------------
# building and writing
# ---------------------------------------------------------------------------


def save(torch_mod, sd: dict, path: Path, meta: dict) -> int:
    from safetensors.torch import save_file

    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    # one metadata entry only: safetensors writes a metadata map in random
    # order, so several keys would make byte-identical rebuilds impossible
    # (and Neo's checkpoint hash would change on every rebuild)
    save_file(sd, str(tmp), metadata={"neo_random": ";".join(f"{k}={v}" for k, v in sorted(meta.items()))})
    os.replace(tmp, path)
    size = path.stat().st_size
    n = sum(t.numel() for t in sd.values())
    print(f"  wrote {path}  ({size / 2**20:.1f} MiB, {n / 1e6:.1f} M values, {len(sd)} tensors)")
    return size


def build_part(torch_mod, part: str, opt: Options, models_dir: Path, force: bool) -> Path:
    sub, name = PART_FILES[part]
    path = models_dir / sub / name
    if path.exists() and not force:
        print(f"  keep {path} (exists; --force rewrites)")
        return path
    seed = opt.seed + sum(map(ord, part))
    if part == "t5":
        f = Factory(torch_mod, seed, opt.small_dtype)
        build_t5(f, T5_CFG, T5_VOCAB, umt5=False)
    elif part == "umt5":
        f = Factory(torch_mod, seed, opt.small_dtype)
        build_t5(f, UMT5_CFG, UMT5_VOCAB, umt5=True)
    elif part == "clip_l":
        f = Factory(torch_mod, seed, "fp16")
        build_clip_l(f)
    elif part in ("qwen25vl", "gemma2", "qwen3"):
        f = Factory(torch_mod, seed, opt.big_dtype)
        spec = {"qwen25vl": QWEN_TE, "gemma2": GEMMA_TE, "qwen3": QWEN3_TE}[part]
        build_llm(f, spec, part, opt.llm_mlp_hidden, opt.llm_attention)
    elif part == "ae":
        f = Factory(torch_mod, seed, opt.small_dtype)
        build_ldm_vae(f, AE_CFG["block_out_channels"], AE_CFG["layers_per_block"])
    elif part == "wan_vae":
        f = Factory(torch_mod, seed, opt.small_dtype)
        build_wan_vae(f, WAN_VAE_CFG["base_dim"], WAN_VAE_CFG["num_res_blocks"])
    else:
        raise KeyError(part)
    save(torch_mod, f.sd, path, {"neo_random_part": part, "seed": seed})
    return path


def build_checkpoint(torch_mod, arch: str, opt: Options, models_dir: Path, force: bool) -> Path:
    path = models_dir / "Stable-diffusion" / CHECKPOINT_FILES[arch]
    if path.exists() and not force:
        print(f"  keep {path} (exists; --force rewrites)")
        return path
    seed = opt.seed + sum(map(ord, arch))
    if arch in ("chroma", "flux"):
        f = Factory(torch_mod, seed, opt.big_dtype)
        build_flux_like(f, opt, chroma=arch == "chroma", context_dim=T5_CFG["d_model"])
    elif arch == "qwen":
        f = Factory(torch_mod, seed, opt.big_dtype)
        build_qwen_image(f, opt)
    elif arch == "wan":
        f = Factory(torch_mod, seed, opt.small_dtype)
        build_wan(f, opt, text_dim=UMT5_CFG["d_model"])
    elif arch in ("zimage", "lumina"):
        f = Factory(torch_mod, seed, opt.big_dtype)
        build_nextdit(f, opt, zimage=arch == "zimage")
    else:
        raise KeyError(arch)
    save(torch_mod, f.sd, path, {"neo_random_arch": arch, "seed": seed})
    return path


def patch_configs(hf_dir: Path, parts: Iterable[str]) -> list[str]:
    changed = []
    for part in parts:
        for rel, updates in CONFIG_PATCHES.get(part, []):
            path = hf_dir / rel
            if not path.is_file():
                print(f"  (no {path}; skipped)")
                continue
            backup = path.with_name(path.name + BACKUP_SUFFIX)
            if not backup.exists():
                shutil.copy2(path, backup)
            cfg = json.loads(backup.read_text())
            cfg.update(updates)
            text = json.dumps(cfg, indent=2) + "\n"
            if path.read_text() != text:
                path.write_text(text)
                print(f"  patched {path}: {updates}")
            changed.append(str(path))
    return changed


def restore_configs(hf_dir: Path) -> None:
    for patches in CONFIG_PATCHES.values():
        for rel, _ in patches:
            path = hf_dir / rel
            backup = path.with_name(path.name + BACKUP_SUFFIX)
            if backup.exists():
                shutil.move(str(backup), str(path))
                print(f"  restored {path}")


def api_selection(arch: str) -> dict:
    """The /sdapi/v1/options payload that selects this architecture."""
    modules = [PART_FILES[p][1] for p in ARCH_PARTS[arch]]
    return {"sd_model_checkpoint": CHECKPOINT_FILES[arch], "forge_additional_modules": modules}


def expand_archs(names: list[str]) -> list[str]:
    out: list[str] = []
    for n in names:
        for a in ARCHS if n == "all" else (n,):
            if a not in ARCHS:
                raise SystemExit(f"unknown architecture {a!r}; choose from {', '.join(ARCHS)} or all")
            if a not in out:
                out.append(a)
    return out


def cmd_build(args: argparse.Namespace, opt: Options) -> None:
    import torch

    torch.set_num_threads(max(1, os.cpu_count() or 1))
    webui = Path(args.webui)
    models_dir = webui / "models"
    hf_dir = webui / "backend" / "huggingface"
    for arch in expand_archs(args.archs):
        print(f"[{arch}]")
        t0 = time.time()
        if not args.no_config_patch:
            patch_configs(hf_dir, ARCH_PARTS[arch])
        for part in ARCH_PARTS[arch]:
            build_part(torch, part, opt, models_dir, args.force)
        build_checkpoint(torch, arch, opt, models_dir, args.force)
        print(f"  select with POST /sdapi/v1/options {json.dumps(api_selection(arch))}")
        print(f"  ({time.time() - t0:.1f}s)")


# ---------------------------------------------------------------------------
# stage 1: load with Neo's own loader and encode prompts (Neo's venv python)
# ---------------------------------------------------------------------------


def _describe(x, depth: int = 0) -> str:
    import torch

    if isinstance(x, torch.Tensor):
        s = f"Tensor{tuple(x.shape)} {str(x.dtype).replace('torch.', '')}"
        if x.numel() and x.is_floating_point():
            s += (
                f" mean={x.float().mean():.4f} std={x.float().std():.4f}" if x.numel() > 1 else f" value={x.item():.4f}"
            )
        return s
    if isinstance(x, dict):
        return "{" + ", ".join(f"{k}: {_describe(v, depth + 1)}" for k, v in x.items()) + "}"
    if isinstance(x, (list, tuple)):
        return f"{type(x).__name__}[" + ", ".join(_describe(v, depth + 1) for v in x) + "]"
    return repr(x)


def _flat_tensors(x) -> list:
    import torch

    if isinstance(x, torch.Tensor):
        return [x]
    if isinstance(x, dict):
        return [t for v in x.values() for t in _flat_tensors(v)]
    if isinstance(x, (list, tuple)):
        return [t for v in x for t in _flat_tensors(v)]
    return []


def _forward_check(engine, arch: str, results: dict) -> None:
    """One direct denoiser call per conditioning plus a VAE decode (a smoke
    test only: the sampler adds more model_conds than this passes)."""
    import torch
    from backend import memory_management

    memory_management.load_models_gpu([engine.forge_objects.unet])
    kmodel = engine.forge_objects.unet.model
    shape = (1, 16, 1, 8, 8) if engine.is_wan else (1, 16, 8, 8)
    x = torch.randn(shape, generator=torch.Generator().manual_seed(0))
    sigma = torch.tensor([0.9])
    outs = {}
    for label in ("prompt 'a cat'", "prompt 'a dog'", "negative ''"):
        c = results[label]
        kwargs = {}
        if isinstance(c, dict):
            ctx = c["crossattn"]
            kwargs["y"] = c["vector"]
            if "guidance" in c:
                kwargs["guidance"] = c["guidance"]
        else:
            ctx = c
        t0 = time.time()
        with torch.inference_mode():
            outs[label] = kmodel.apply_model(x, sigma, c_crossattn=ctx, transformer_options={}, **kwargs)
        o = outs[label]
        print(
            f"  denoised[{label}]: {tuple(o.shape)} finite={bool(torch.isfinite(o).all())} std={o.std():.4f} ({time.time() - t0:.2f}s)"  # noqa: E501
        )
    d1 = (outs["prompt 'a cat'"] - outs["prompt 'a dog'"]).abs().max()
    d2 = (outs["prompt 'a cat'"] - outs["negative ''"]).abs().max()
    print(f"  max|denoised(cat)-denoised(dog)| = {d1:.4g}; max|denoised(cat)-denoised(empty negative)| = {d2:.4g}")
    t0 = time.time()
    with torch.inference_mode():
        img = engine.decode_first_stage(outs["prompt 'a cat'"])
    print(
        f"  VAE decode -> {tuple(img.shape)} finite={bool(torch.isfinite(img).all())} range=[{img.min():.3f}, {img.max():.3f}] ({time.time() - t0:.2f}s)"  # noqa: E501
    )


def cmd_verify_load(args: argparse.Namespace) -> None:
    webui = Path(args.webui).resolve()
    os.chdir(webui)
    sys.argv = [sys.argv[0], "--always-cpu"]
    sys.path[:0] = [str(webui), str(webui / "modules_forge" / "packages")]
    import resource

    import torch
    from backend.huggingface import process as unpack_tokenizers

    unpack_tokenizers()
    from modules import shared_init

    shared_init.initialize()
    from backend import memory_management
    from backend.args import dynamic_args
    from backend.loader import forge_loader
    from backend.operations import ForgeOperations
    from modules.prompt_parser import SdConditioning

    dynamic_args["embedding_dir"] = str(webui / "embeddings")
    models_dir = webui / "models"
    for arch in expand_archs(args.archs):
        print(f"===== {arch} =====", flush=True)
        ckpt = models_dir / "Stable-diffusion" / CHECKPOINT_FILES[arch]
        modules = [str(models_dir / PART_FILES[p][0] / PART_FILES[p][1]) for p in ARCH_PARTS[arch]]
        t0 = time.time()
        engine = forge_loader(str(ckpt), additional_state_dicts=modules)
        print(f"engine: {type(engine).__name__}  ({time.time() - t0:.1f}s to load)")
        print(
            f"guess: {type(engine.model_config).__name__} repo={engine.model_config.huggingface_repo} unet_config={engine.model_config.unet_config}"  # noqa: E501
        )
        unloaded = []
        for comp_name, comp in (
            ("unet", engine.forge_objects.unet.model),
            ("clip", engine.forge_objects.clip.cond_stage_model),
            ("vae", engine.forge_objects.vae.first_stage_model),
        ):
            for mn, m in comp.named_modules():
                if isinstance(m, ForgeOperations.Linear) and (hasattr(m, "dummy") or m.weight is None):
                    unloaded.append(f"{comp_name}:{mn}")
        skip = ("visual.",)  # Qwen2.5-VL vision tower: not shipped, unused by txt2img
        real = [u for u in unloaded if not any(s in u for s in skip)]
        print(
            f"Linear layers without weights: {len(real)}"
            + (f" e.g. {real[:5]}" if real else "")
            + (f" (+{len(unloaded) - len(real)} in the unused vision tower)" if len(unloaded) != len(real) else "")
        )
        d_cfg = API_DEFAULTS[arch].get("distilled_cfg_scale", 3.5)
        results = {}
        for label, prompts, neg in (
            ("prompt 'a cat'", ["a cat"], False),
            ("prompt 'a dog'", ["a dog"], False),
            ("negative ''", [""], True),
            ("negative 'glasses'", ["glasses"], True),
        ):
            cond_in = SdConditioning(prompts, is_negative_prompt=neg, width=64, height=64, distilled_cfg_scale=d_cfg)
            t1 = time.time()
            c = engine.get_learned_conditioning(cond_in)
            results[label] = c
            bad = any(not torch.isfinite(t.float()).all() for t in _flat_tensors(c) if t.is_floating_point())
            print(
                f"  {label:22s} -> {_describe(c)}  [{time.time() - t1:.2f}s{' NON-FINITE' if bad else ''}]", flush=True
            )
        a = _flat_tensors(results["prompt 'a cat'"])[0]
        b = _flat_tensors(results["prompt 'a dog'"])[0]
        if a.shape == b.shape:
            print(f"  cat vs dog cond max|diff| = {(a.float() - b.float()).abs().max():.4f}")
        predictor = engine.forge_objects.unet.model.predictor
        print(
            f"  predictor: {type(predictor).__name__} "
            + ", ".join(f"{k}={getattr(predictor, k)}" for k in ("shift", "multiplier", "mu") if hasattr(predictor, k))
        )
        if args.forward:
            _forward_check(engine, arch, results)
        del engine
        memory_management.unload_all_models()
        import gc

        gc.collect()
        print(f"  peak RSS so far: {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20:.2f} GiB", flush=True)


# ---------------------------------------------------------------------------
# stage 2: drive a running Neo server through its HTTP API
# ---------------------------------------------------------------------------


def _http(url: str, payload: dict | None = None, timeout: float = 1800.0) -> object:
    import urllib.request

    data = None if payload is None else json.dumps(payload).encode()
    req = urllib.request.Request(
        url, data=data, headers={"Content-Type": "application/json"}, method="GET" if payload is None else "POST"
    )
    with urllib.request.urlopen(req, timeout=timeout) as r:
        body = r.read()
    return json.loads(body) if body else None


def cmd_verify_api(args: argparse.Namespace) -> None:
    base = args.url.rstrip("/")
    for arch in expand_archs(args.archs):
        print(f"===== {arch} =====", flush=True)
        _http(f"{base}/sdapi/v1/refresh-checkpoints", {})
        selection = api_selection(arch)
        known = {m["model_name"] for m in _http(f"{base}/sdapi/v1/sd-modules")}  # type: ignore[union-attr]
        missing = [m for m in selection["forge_additional_modules"] if m not in known]
        if missing:
            print(f"  server does not list modules {missing}; known: {sorted(known)}")
        print(f"  POST /sdapi/v1/options {json.dumps(selection)}")
        _http(f"{base}/sdapi/v1/options", selection)
        opts = _http(f"{base}/sdapi/v1/options")
        print(
            f"  now: sd_model_checkpoint={opts.get('sd_model_checkpoint')!r} forge_additional_modules={opts.get('forge_additional_modules')}"  # noqa: E501
        )  # type: ignore[union-attr]
        payload = dict(
            prompt="a cat",
            negative_prompt="glasses",
            width=args.size,
            height=args.size,
            steps=args.steps,
            seed=1,
            batch_size=1,
            n_iter=1,
            **API_DEFAULTS[arch],
        )
        if args.cfg is not None:
            payload["cfg_scale"] = args.cfg
        if args.sampler:
            payload["sampler_name"] = args.sampler
        if args.scheduler:
            payload["scheduler"] = args.scheduler
        # run 1 loads the model, run 2 reuses Neo's cached conditioning,
        # later runs change the prompt so that the text encoder runs again
        for attempt in range(args.repeat):
            if attempt >= 2:
                payload["prompt"] = f"a cat, variant {attempt}"
            t0 = time.time()
            out = _http(f"{base}/sdapi/v1/txt2img", payload)
            dt = time.time() - t0
            images = out.get("images") or []  # type: ignore[union-attr]
            info = json.loads(out.get("info") or "{}")  # type: ignore[union-attr]
            desc = "no image"
            if images:
                raw = base64.b64decode(images[0])
                desc = f"{len(raw)} bytes"
                try:
                    from PIL import Image

                    im = Image.open(io.BytesIO(raw))
                    desc = f"{im.format} {im.size[0]}x{im.size[1]} {im.mode}"
                    if args.save_dir:
                        Path(args.save_dir).mkdir(parents=True, exist_ok=True)
                        im.save(Path(args.save_dir) / f"{arch}.png")
                except Exception as e:  # noqa: BLE001 - report only
                    desc += f" (PIL: {e})"
            print(
                f"  txt2img #{attempt + 1} ({payload['prompt']!r}): {dt:.1f}s, {desc}; infotext: {(info.get('infotexts') or [''])[0]!r}",  # noqa: E501
                flush=True,
            )


# ---------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument(
        "--webui", default=str(DEFAULT_WEBUI), help="Neo checkout (fixture) root; files go to <webui>/models"
    )
    sub = ap.add_subparsers(dest="cmd", required=True)

    b = sub.add_parser("build", help="write checkpoints/modules and patch the fixture's bundled configs")
    b.add_argument("archs", nargs="+", help=f"{', '.join(ARCHS)} or all")
    b.add_argument("--force", action="store_true", help="rewrite files that already exist")
    b.add_argument("--no-config-patch", action="store_true", help="do not touch backend/huggingface/*/config.json")
    b.add_argument("--seed", type=int, default=Options.seed)
    b.add_argument(
        "--dtype",
        choices=["fp8", "bf16", "fp16", "fp32"],
        default=Options.big_dtype,
        help="dtype of the files whose width Neo hard-codes (default fp8 = float8_e4m3fn)",
    )
    b.add_argument(
        "--mlp-hidden",
        type=int,
        default=Options.mlp_hidden,
        help="MLP hidden width inside Flux/Chroma/Qwen/Lumina/Z-Image blocks",
    )
    b.add_argument(
        "--llm-mlp-hidden",
        type=int,
        default=Options.llm_mlp_hidden,
        help="MLP hidden width inside the LLM text encoders",
    )
    b.add_argument(
        "--llm-attention",
        choices=["full", "rank1"],
        default=Options.llm_attention,
        help="rank1 stores LLM attention projections as weight(out,1)*scale_weight(1,in): ~2.5x smaller files",
    )
    b.add_argument("--flux-double", type=int, default=Options.flux_double)
    b.add_argument("--flux-single", type=int, default=Options.flux_single)
    b.add_argument("--chroma-double", type=int, default=Options.chroma_double)
    b.add_argument("--chroma-single", type=int, default=Options.chroma_single)
    b.add_argument("--qwen-layers", type=int, default=Options.qwen_layers)
    b.add_argument("--wan-dim", type=int, default=Options.wan_dim)
    b.add_argument("--wan-ffn", type=int, default=Options.wan_ffn)
    b.add_argument("--wan-layers", type=int, default=Options.wan_layers)
    b.add_argument("--lumina-layers", type=int, default=Options.lumina_layers)
    b.add_argument("--zimage-layers", type=int, default=Options.zimage_layers)

    sub.add_parser("restore-configs", help="restore the bundled configs patched by build")

    v = sub.add_parser(
        "verify-load", help="stage 1: load with Neo's forge_loader and encode prompts (run with Neo's venv)"
    )
    v.add_argument("archs", nargs="+")
    v.add_argument(
        "--forward", action="store_true", help="also run one denoiser call per conditioning and a VAE decode"
    )

    a = sub.add_parser("verify-api", help="stage 2: select + txt2img against a running Neo server")
    a.add_argument("archs", nargs="+")
    a.add_argument("--url", default="http://127.0.0.1:7862")
    a.add_argument("--size", type=int, default=64)
    a.add_argument("--steps", type=int, default=4)
    a.add_argument("--cfg", type=float, default=None)
    a.add_argument(
        "--repeat",
        type=int,
        default=3,
        help="generations per architecture: 1st loads the model, 2nd hits the conditioning cache, later ones re-encode a changed prompt",  # noqa: E501
    )
    a.add_argument("--sampler", default=None, help="override the preset sampler")
    a.add_argument("--scheduler", default=None, help="override the preset scheduler")
    a.add_argument("--save-dir", default=None)

    args = ap.parse_args(argv)
    if args.cmd == "build":
        opt = Options(
            seed=args.seed,
            mlp_hidden=args.mlp_hidden,
            llm_mlp_hidden=args.llm_mlp_hidden,
            llm_attention=args.llm_attention,
            flux_double=args.flux_double,
            flux_single=args.flux_single,
            chroma_double=args.chroma_double,
            chroma_single=args.chroma_single,
            qwen_layers=args.qwen_layers,
            wan_dim=args.wan_dim,
            wan_ffn=args.wan_ffn,
            wan_layers=args.wan_layers,
            lumina_layers=args.lumina_layers,
            zimage_layers=args.zimage_layers,
            big_dtype=args.dtype,
        )
        cmd_build(args, opt)
    elif args.cmd == "restore-configs":
        restore_configs(Path(args.webui) / "backend" / "huggingface")
    elif args.cmd == "verify-load":
        cmd_verify_load(args)
    elif args.cmd == "verify-api":
        cmd_verify_api(args)


if __name__ == "__main__":
    main()
