"""Image-comparison and accessory-removal metrics for the demo and the benchmark (pure torch functions).

Conventions: images are float tensors in [0, 1] (what the WebUI stand-in returns), one image [3, H, W] or a
batch [N, 3, H, W]; a `mask` selects the pixels to *include* ([H, W] or [N, H, W], bool). Single images give
Python floats, batches give float64 tensors [N].

- `psnr`, `ssim`: masked PSNR (data range 1) and SSIM (Gaussian window, sigma 1.5, 7x7, replicate padding;
  local statistics weighted by the mask so excluded pixels take no part; the SSIM map is averaged over channels
  and then over the included pixels).
- `preservation`: PSNR/SSIM between the image made with the negative prompt and the one made without it,
  measured *outside* the accessory region (by default the union of the accessory regions of both images,
  dilated).
- `removal_success` / `removal_rate`: the accessory is present without the negative prompt and absent with
  it (rate over the cases where it was present without).
- `reverse_activation` / `reverse_rate`: absent without the negative prompt but present with it (rate over the
  cases where it was absent without) - Ban et al.'s "reverse activation".
- `case_score`: the benchmark's single per-case score, (1 - accessory present with the negative) x SSIM outside.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

SSIM_SIGMA = 1.5
SSIM_WINDOW = 7
SSIM_C1 = 0.01**2
SSIM_C2 = 0.03**2
SCORE_DEFINITION = (
    "score = (1 - accessory_present_with_negative) * ssim_outside_accessory_region "
    "(per case; 0 when the accessory remains or appears, else how well the rest of the image is preserved)"
)


def _batch(x: torch.Tensor) -> tuple[torch.Tensor, bool]:
    """[3,H,W] or [N,3,H,W] -> (float64 [N,C,H,W], was_single)."""
    t = torch.as_tensor(x).detach().to("cpu", torch.float64)
    if t.ndim == 3:
        return t[None], True
    if t.ndim != 4:
        raise ValueError(f"expected an image [C,H,W] or a batch [N,C,H,W], got shape {tuple(t.shape)}")
    return t, False


def _mask(mask: torch.Tensor | None, n: int, h: int, w: int) -> torch.Tensor:
    """Mask of included pixels as bool [N,H,W] (all True when None)."""
    if mask is None:
        return torch.ones(n, h, w, dtype=torch.bool)
    m = torch.as_tensor(mask).detach().to("cpu").bool()
    if m.ndim == 2:
        m = m[None]
    if m.shape[-2:] != (h, w):
        raise ValueError(f"mask shape {tuple(m.shape)} does not match images of size {h}x{w}")
    return m.expand(n, h, w)


def _result(values: torch.Tensor, single: bool) -> float | torch.Tensor:
    return float(values[0]) if single else values


def psnr(a: torch.Tensor, b: torch.Tensor, mask: torch.Tensor | None = None) -> float | torch.Tensor:
    """PSNR in dB (data range 1) over the included pixels; inf for identical images, nan for an empty mask."""
    x, single = _batch(a)
    y, _ = _batch(b)
    if x.shape != y.shape:
        raise ValueError(f"shape mismatch {tuple(x.shape)} vs {tuple(y.shape)}")
    n, c, h, w = x.shape
    m = _mask(mask, n, h, w)[:, None].expand(n, c, h, w).double()
    count = m.flatten(1).sum(1)
    mse = (((x - y) ** 2) * m).flatten(1).sum(1) / count
    out = torch.where(mse > 0, 10.0 * torch.log10(1.0 / mse), torch.full_like(mse, math.inf))
    out = torch.where(count > 0, out, torch.full_like(out, math.nan))
    return _result(out, single)


def _gaussian_window(size: int = SSIM_WINDOW, sigma: float = SSIM_SIGMA) -> torch.Tensor:
    r = torch.arange(size, dtype=torch.float64) - (size - 1) / 2
    g = torch.exp(-(r**2) / (2 * sigma**2))
    g = g / g.sum()
    return torch.outer(g, g)


def ssim_map(a: torch.Tensor, b: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
    """Per-pixel SSIM [N,H,W] (averaged over channels) of images in [0,1]; Gaussian window, replicate padding.

    With a `mask` (pixels to include) the local means, variances and covariance are weighted by the mask, so
    excluded pixels do not influence the result at all; the map is meaningful at included pixels only."""
    x, _ = _batch(a)
    y, _ = _batch(b)
    if x.shape != y.shape:
        raise ValueError(f"shape mismatch {tuple(x.shape)} vs {tuple(y.shape)}")
    n, c, h, w = x.shape
    m = _mask(mask, n, h, w).double()[:, None]
    win = _gaussian_window()[None, None].expand(c, 1, SSIM_WINDOW, SSIM_WINDOW).contiguous()
    pad = SSIM_WINDOW // 2

    def blur(t: torch.Tensor) -> torch.Tensor:
        return F.conv2d(F.pad(t, (pad, pad, pad, pad), mode="replicate"), win, groups=c)

    weight = blur(m.expand(n, c, h, w)).clamp_min(1e-12)

    def local_mean(t: torch.Tensor) -> torch.Tensor:
        return blur(t * m) / weight

    mu_x, mu_y = local_mean(x), local_mean(y)
    var_x = local_mean(x * x) - mu_x * mu_x
    var_y = local_mean(y * y) - mu_y * mu_y
    cov = local_mean(x * y) - mu_x * mu_y
    num = (2 * mu_x * mu_y + SSIM_C1) * (2 * cov + SSIM_C2)
    den = (mu_x * mu_x + mu_y * mu_y + SSIM_C1) * (var_x + var_y + SSIM_C2)
    return (num / den).mean(1)


def ssim(a: torch.Tensor, b: torch.Tensor, mask: torch.Tensor | None = None) -> float | torch.Tensor:
    """Mean SSIM over the included pixels: 1 for identical images, lower the more they differ; nan for an empty
    mask. Excluded pixels take no part (the local statistics are mask-weighted)."""
    x, single = _batch(a)
    y, _ = _batch(b)
    n, _, h, w = x.shape
    m = _mask(mask, n, h, w)
    smap = ssim_map(x, y, m)
    md = m.double()
    count = md.flatten(1).sum(1)
    out = (smap * md).flatten(1).sum(1) / count
    out = torch.where(count > 0, out, torch.full_like(out, math.nan))
    return _result(out, single)


def accessory_union_region(
    img_a: torch.Tensor, img_b: torch.Tensor, dilate: int = 2, accessory: str = "hat"
) -> torch.Tensor:
    """Bool [N,H,W] (or [H,W] for single images): the union of the `accessory` regions of two images in [0,1],
    each dilated by `dilate` pixels (`presence.accessory_region`)."""
    from .presence import accessory_region

    x, single = _batch(img_a)
    y, _ = _batch(img_b)
    ra = accessory_region(x.float() * 2 - 1, accessory, dilate=dilate)
    region = ra | accessory_region(y.float() * 2 - 1, accessory, dilate=dilate)
    return region[0] if single else region


def preservation(
    img_neg: torch.Tensor,
    img_ref: torch.Tensor,
    region: torch.Tensor | None = None,
    dilate: int = 2,
    accessory: str = "hat",
) -> dict[str, float | torch.Tensor]:
    """How much of the picture the negative prompt left alone: {"psnr", "ssim"} between `img_neg` (made with the
    negative prompt) and `img_ref` (same seed and prompt, without it), computed OUTSIDE `region` (bool, pixels to
    exclude). `region=None` excludes the union of both images' `accessory` regions dilated by `dilate` pixels."""
    if region is None:
        region = accessory_union_region(img_neg, img_ref, dilate=dilate, accessory=accessory)
    keep = ~torch.as_tensor(region).bool()
    return {"psnr": psnr(img_neg, img_ref, keep), "ssim": ssim(img_neg, img_ref, keep)}


def _bools(x: torch.Tensor | list[bool]) -> torch.Tensor:
    return torch.as_tensor(x).bool().flatten()


def removal_success(
    present_without: torch.Tensor | list[bool], present_with: torch.Tensor | list[bool]
) -> torch.Tensor:
    """Bool per case: the accessory is there without the negative prompt and gone with it."""
    a, b = _bools(present_without), _bools(present_with)
    return a & ~b


def reverse_activation(
    present_without: torch.Tensor | list[bool], present_with: torch.Tensor | list[bool]
) -> torch.Tensor:
    """Bool per case: the accessory is absent without the negative prompt but present with it."""
    a, b = _bools(present_without), _bools(present_with)
    return ~a & b


def removal_rate(present_without: torch.Tensor | list[bool], present_with: torch.Tensor | list[bool]) -> float:
    """Share of the cases with the accessory present without the negative prompt that lose it with the negative
    prompt; nan when there is no such case."""
    a = _bools(present_without)
    n = int(a.sum())
    return float(removal_success(a, present_with).sum()) / n if n else math.nan


def reverse_rate(present_without: torch.Tensor | list[bool], present_with: torch.Tensor | list[bool]) -> float:
    """Share of the cases without the accessory (no negative prompt) that gain it with the negative prompt; nan
    when there is no such case."""
    a = _bools(present_without)
    n = int((~a).sum())
    return float(reverse_activation(a, present_with).sum()) / n if n else math.nan


def case_score(present_with: torch.Tensor | list[bool], ssim_outside: torch.Tensor | list[float]) -> torch.Tensor:
    """Per-case combined score (`SCORE_DEFINITION`): (1 - accessory present with the negative) x SSIM outside the
    accessory region, float64 [N]."""
    ok = (~_bools(present_with)).double()
    return ok * torch.as_tensor(ssim_outside, dtype=torch.float64).flatten()
