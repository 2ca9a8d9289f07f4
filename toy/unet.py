"""Small pixel-space UNet with timestep embedding and cross-attention to text tokens (SD's structure, tiny).

Resolutions 32 / 16 / 8 with channels (64, 128, 128); cross-attention transformer blocks at 16x16 and 8x8 and in
the middle block. Predicts eps (the added noise).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn


def timestep_embedding(t: torch.Tensor, dim: int, max_period: float = 10000.0) -> torch.Tensor:
    """Sinusoidal embedding of (possibly fractional) timesteps [B] -> [B, dim]."""
    half = dim // 2
    freqs = torch.exp(-math.log(max_period) * torch.arange(half, device=t.device, dtype=torch.float32) / half)
    args = t.float()[:, None] * freqs[None]
    return torch.cat([torch.cos(args), torch.sin(args)], dim=-1)


def _norm(ch: int) -> nn.GroupNorm:
    return nn.GroupNorm(min(32, ch // 4), ch)


class ResBlock(nn.Module):
    """GroupNorm-SiLU-conv residual block with additive timestep embedding."""

    def __init__(self, cin: int, cout: int, emb_dim: int) -> None:
        super().__init__()
        self.norm1 = _norm(cin)
        self.conv1 = nn.Conv2d(cin, cout, 3, padding=1)
        self.emb = nn.Linear(emb_dim, cout)
        self.norm2 = _norm(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, padding=1)
        self.skip = nn.Conv2d(cin, cout, 1) if cin != cout else nn.Identity()
        nn.init.zeros_(self.conv2.weight)
        nn.init.zeros_(self.conv2.bias)

    def forward(self, x: torch.Tensor, emb: torch.Tensor) -> torch.Tensor:
        """Apply the block."""
        h = self.conv1(F.silu(self.norm1(x)))
        h = h + self.emb(F.silu(emb))[:, :, None, None]
        h = self.conv2(F.silu(self.norm2(h)))
        return self.skip(x) + h


class Attention(nn.Module):
    """Multi-head (cross-)attention; context=None means self-attention."""

    def __init__(self, dim: int, context_dim: int | None = None, heads: int = 4) -> None:
        super().__init__()
        context_dim = context_dim or dim
        self.heads = heads
        self.to_q = nn.Linear(dim, dim, bias=False)
        self.to_k = nn.Linear(context_dim, dim, bias=False)
        self.to_v = nn.Linear(context_dim, dim, bias=False)
        self.to_out = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor, context: torch.Tensor | None = None) -> torch.Tensor:
        """Attend from x [B, N, C] to context [B, M, Cc] (or to x itself)."""
        ctx = x if context is None else context
        b, n, c = x.shape
        h = self.heads
        q = self.to_q(x).view(b, n, h, c // h).transpose(1, 2)
        k = self.to_k(ctx).view(b, ctx.shape[1], h, c // h).transpose(1, 2)
        v = self.to_v(ctx).view(b, ctx.shape[1], h, c // h).transpose(1, 2)
        out = F.scaled_dot_product_attention(q, k, v)
        return self.to_out(out.transpose(1, 2).reshape(b, n, c))


class SpatialTransformer(nn.Module):
    """SD-style block: self-attention, cross-attention to text, feed-forward, with residuals."""

    def __init__(self, ch: int, context_dim: int, heads: int = 4) -> None:
        super().__init__()
        self.norm = _norm(ch)
        self.proj_in = nn.Conv2d(ch, ch, 1)
        self.ln1 = nn.LayerNorm(ch)
        self.attn1 = Attention(ch, None, heads)
        self.ln2 = nn.LayerNorm(ch)
        self.attn2 = Attention(ch, context_dim, heads)
        self.ln3 = nn.LayerNorm(ch)
        self.ff = nn.Sequential(nn.Linear(ch, ch * 2), nn.GELU(), nn.Linear(ch * 2, ch))
        self.proj_out = nn.Conv2d(ch, ch, 1)
        nn.init.zeros_(self.proj_out.weight)
        nn.init.zeros_(self.proj_out.bias)

    def forward(self, x: torch.Tensor, context: torch.Tensor) -> torch.Tensor:
        """Apply the block to feature map x [B, C, H, W] with text context [B, L, D]."""
        b, c, hh, ww = x.shape
        h = self.proj_in(self.norm(x)).flatten(2).transpose(1, 2)
        h = h + self.attn1(self.ln1(h))
        h = h + self.attn2(self.ln2(h), context)
        h = h + self.ff(self.ln3(h))
        h = h.transpose(1, 2).reshape(b, c, hh, ww)
        return x + self.proj_out(h)


class UNet(nn.Module):
    """Tiny text-conditioned UNet: 32x32x3 -> eps, channels (c1, c2, c2) at 32/16/8, or with `patch` 2 at
    16/8/4 on 2x2 pixel patches (pixel-unshuffle in, pixel-shuffle out: a quarter of the work)."""

    def __init__(
        self, in_ch: int = 3, c1: int = 64, c2: int = 128, context_dim: int = 64, heads: int = 4, patch: int = 1
    ) -> None:
        super().__init__()
        emb_dim = c1 * 4
        self.c1 = c1
        self.patch = patch
        in_ch = in_ch * patch * patch
        self.time_mlp = nn.Sequential(nn.Linear(c1, emb_dim), nn.SiLU(), nn.Linear(emb_dim, emb_dim))
        self.conv_in = nn.Conv2d(in_ch, c1, 3, padding=1)
        # down path
        self.d32 = ResBlock(c1, c1, emb_dim)
        self.down1 = nn.Conv2d(c1, c1, 3, stride=2, padding=1)
        self.d16 = ResBlock(c1, c2, emb_dim)
        self.d16_attn = SpatialTransformer(c2, context_dim, heads)
        self.down2 = nn.Conv2d(c2, c2, 3, stride=2, padding=1)
        self.d8 = ResBlock(c2, c2, emb_dim)
        self.d8_attn = SpatialTransformer(c2, context_dim, heads)
        # middle
        self.mid1 = ResBlock(c2, c2, emb_dim)
        self.mid_attn = SpatialTransformer(c2, context_dim, heads)
        self.mid2 = ResBlock(c2, c2, emb_dim)
        # up path
        self.u8 = ResBlock(c2 + c2, c2, emb_dim)
        self.u8_attn = SpatialTransformer(c2, context_dim, heads)
        self.up1 = nn.Conv2d(c2, c2, 3, padding=1)
        self.u16 = ResBlock(c2 + c2, c2, emb_dim)
        self.u16_attn = SpatialTransformer(c2, context_dim, heads)
        self.up2 = nn.Conv2d(c2, c1, 3, padding=1)
        self.u32 = ResBlock(c1 + c1, c1, emb_dim)
        self.norm_out = _norm(c1)
        self.conv_out = nn.Conv2d(c1, in_ch, 3, padding=1)
        nn.init.zeros_(self.conv_out.weight)
        nn.init.zeros_(self.conv_out.bias)

    def forward(self, x: torch.Tensor, t: torch.Tensor, context: torch.Tensor) -> torch.Tensor:
        """Predict eps for noisy x [B,3,32,32] at timesteps t [B] given text context [B,L,D]."""
        emb = self.time_mlp(timestep_embedding(t, self.c1))
        if self.patch > 1:
            x = F.pixel_unshuffle(x, self.patch)
        h = self.conv_in(x)
        s32 = self.d32(h, emb)
        h = self.d16_attn(self.d16(self.down1(s32), emb), context)
        s16 = h
        h = self.d8_attn(self.d8(self.down2(h), emb), context)
        s8 = h
        h = self.mid2(self.mid_attn(self.mid1(h, emb), context), emb)
        h = self.u8_attn(self.u8(torch.cat([h, s8], 1), emb), context)
        h = self.up1(F.interpolate(h, scale_factor=2.0, mode="nearest"))
        h = self.u16_attn(self.u16(torch.cat([h, s16], 1), emb), context)
        h = self.up2(F.interpolate(h, scale_factor=2.0, mode="nearest"))
        h = self.u32(torch.cat([h, s32], 1), emb)
        out = self.conv_out(F.silu(self.norm_out(h)))
        return F.pixel_shuffle(out, self.patch) if self.patch > 1 else out
