"""Stand-in for modules/masking.py (v1.10.1): the "Inpaint only masked" crop region and the "fill" masked content.

The WebUI's masks are 8-bit greyscale ("L") PIL images. Here an "L image" is a uint8 numpy array [H, W]
(``to_l_image``); the functions also take a PIL image or a float tensor in [0, 1], and work on float tensors
(``as_mask_tensor``). Boxes are (left, top, right, bottom) with right/bottom exclusive, like PIL's.
"""

from __future__ import annotations

import functools

import numpy as np
import torch


def as_mask_tensor(mask) -> torch.Tensor:
    """Stand-in helper: a mask given as tensor ([H, W] or [1, H, W], values in [0, 1]), PIL image or uint8 array as a
    float tensor [H, W] in [0, 1]."""
    if isinstance(mask, torch.Tensor):
        m = mask.detach().float().cpu()
        while m.ndim > 2:
            m = m[0]
        return m
    if hasattr(mask, "convert"):
        mask = np.array(mask.convert("L"))
    arr = np.asarray(mask)
    m = torch.from_numpy(arr.astype(np.float32))
    return m / 255.0 if arr.dtype == np.uint8 else m


def to_l_image(mask: torch.Tensor) -> np.ndarray:
    """Stand-in helper: a float mask [H, W] in [0, 1] stored as an 8-bit greyscale image (uint8 array)."""
    return (mask.clamp(0, 1) * 255).round().to(torch.uint8).numpy()


def get_crop_region_v2(mask, pad: int = 0):
    """mirrors masking.get_crop_region_v2: the smallest box holding every non-zero mask pixel, grown by `pad` on
    each side and kept inside the mask; None for an all-zero mask."""
    m = as_mask_tensor(mask)
    rows = torch.nonzero(m.amax(dim=1) > 0).flatten()
    cols = torch.nonzero(m.amax(dim=0) > 0).flatten()
    if len(rows) == 0:
        return None
    left, top, right, bottom = int(cols[0]), int(rows[0]), int(cols[-1]) + 1, int(rows[-1]) + 1
    if not pad:
        return left, top, right, bottom
    height, width = m.shape
    return max(left - pad, 0), max(top - pad, 0), min(right + pad, width), min(bottom + pad, height)


def get_crop_region(mask, pad: int = 0):
    """mirrors masking.get_crop_region (kept for old extensions): like v2, but an all-zero mask gives the
    "inverted" box (width - pad, height - pad, pad, pad), clamped, instead of None."""
    region = get_crop_region_v2(mask, pad)
    if region is not None:
        return region
    height, width = as_mask_tensor(mask).shape
    return max(width - pad, 0), max(height - pad, 0), min(pad, width), min(pad, height)


def _grow_to_span(lo: int, hi: int, wanted: float, limit: int) -> tuple[int, int]:
    """Widen [lo, hi) by int(wanted - (hi - lo)) split about evenly (the odd pixel after), then slide it back inside
    [0, limit) and clamp its far end."""
    extra = int(wanted - (hi - lo))
    lo, hi = lo - extra // 2, hi + extra - extra // 2
    if hi >= limit:
        shift = hi - limit
        lo, hi = lo - shift, hi - shift
    if lo < 0:
        lo, hi = 0, hi - lo
    return lo, min(hi, limit)


def expand_crop_region(crop_region, processing_width, processing_height, image_width, image_height):
    """mirrors masking.expand_crop_region: grows the box's short side until its aspect ratio is that of the
    processing size (so that resizing the crop to processing_width x processing_height keeps proportions), staying
    inside the image where it can."""
    x1, y1, x2, y2 = crop_region
    target_ratio = processing_width / processing_height
    if (x2 - x1) / (y2 - y1) > target_ratio:
        y1, y2 = _grow_to_span(y1, y2, (x2 - x1) / target_ratio, image_height)
    else:
        x1, x2 = _grow_to_span(x1, x2, (y2 - y1) * target_ratio, image_width)
    return x1, y1, x2, y2


def gaussian_kernel(sigma: float, size: int) -> torch.Tensor:
    """A normalised 1-D Gaussian of `size` taps (odd) and standard deviation `sigma`."""
    offsets = torch.arange(size, dtype=torch.float64) - (size - 1) / 2
    k = torch.exp(-0.5 * (offsets / sigma) ** 2)
    return (k / k.sum()).float()


def _reflect_indices(n: int, pad: int) -> torch.Tensor:
    """Indices of a row of n samples extended by `pad` on both sides, mirrored about the edge samples (which are
    not repeated), as often as needed."""
    idx = torch.arange(-pad, n + pad)
    if n == 1:
        return torch.zeros_like(idx)
    period = 2 * (n - 1)
    idx = idx.remainder(period)
    return torch.where(idx >= n, period - idx, idx)


@functools.lru_cache(maxsize=64)
def _blur_matrix(n: int, sigma: float, size: int) -> torch.Tensor:
    """[n, n]: output sample i = sum over j of row i * input j, for a `size`-tap Gaussian over the mirrored row."""
    kernel = gaussian_kernel(sigma, size)
    source = _reflect_indices(n, size // 2)
    windows = source[torch.arange(n)[:, None] + torch.arange(size)[None, :]]  # [n, size]: input index of each tap
    return torch.zeros(n, n).scatter_add_(1, windows, kernel.expand(n, size).contiguous())


def blur_1d(plane: torch.Tensor, sigma: float, size: int, dim: int) -> torch.Tensor:
    """Gaussian blur of a [..., H, W] tensor along `dim` (-1: x, -2: y), mirrored edges."""
    moved = plane.float().movedim(dim, -1)
    return (moved @ _blur_matrix(moved.shape[-1], float(sigma), int(size)).T).movedim(-1, dim)


def fill(image: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """mirrors masking.fill ("Masked content: fill"): the masked part of `image` ([3, H, W] in [0, 1]) takes the
    colours of its surroundings. The unmasked pixels (weight 1 - mask) are blurred at decreasing radii 256, 64, 16,
    4, 2, 0 (sharper layers composited more often), each layer laid over the previous ones with its own coverage."""
    m = as_mask_tensor(mask)
    keep = 1.0 - m
    premultiplied = torch.cat([image * keep, keep[None]])  # colour weighted by coverage, then coverage
    out_rgb = torch.zeros_like(image)
    out_alpha = torch.zeros_like(keep)
    for radius, repeats in ((256, 1), (64, 1), (16, 2), (4, 4), (2, 2), (0, 1)):
        layer = premultiplied
        if radius > 0:
            size = 2 * int(2.5 * radius + 0.5) + 1  # taps covering about 2.5 standard deviations each way
            layer = blur_1d(blur_1d(layer, radius, size, -1), radius, size, -2)
        rgb_p, alpha = layer[:3], layer[3].clamp(0, 1)
        for _ in range(repeats):
            out_rgb = rgb_p + out_rgb * (1 - alpha)  # "over", premultiplied
            out_alpha = alpha + out_alpha * (1 - alpha)
    return (out_rgb / out_alpha.clamp(min=1e-6)).clamp(0, 1)
