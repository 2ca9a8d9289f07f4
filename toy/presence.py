"""Deterministic, non-learned hat (accessory) detector for toy-world images.

No background or shape colour is near white, so a hat shows up as a compact blob of near-white pixels.
`whiteness` = min over RGB channels (in [0, 1]); a 3x3 box blur suppresses isolated noisy pixels; a pixel is
"hat" when its blurred whiteness exceeds `WHITE_THRESHOLD`; an image has a hat when at least `MIN_PIXELS`
pixels are hat pixels. The smallest ground-truth hat covers ~30 pixels (its blurred core ~15), so
`MIN_PIXELS = 6` leaves margin both ways for slightly noisy / blurry model outputs.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

WHITE_THRESHOLD = 0.75
MIN_PIXELS = 6


def _as_tensor(images: torch.Tensor | np.ndarray) -> torch.Tensor:
    """[N,3,H,W] or [3,H,W] in [-1,1] -> float tensor [N,3,H,W] on CPU."""
    x = torch.as_tensor(np.asarray(images) if isinstance(images, np.ndarray) else images).detach().float().cpu()
    if x.ndim == 3:
        x = x[None]
    if x.ndim != 4 or x.shape[1] != 3:
        raise ValueError(f"expected images [N,3,H,W] in [-1,1], got shape {tuple(x.shape)}")
    return x


def whiteness(images: torch.Tensor | np.ndarray) -> torch.Tensor:
    """Per-pixel whiteness [N,H,W] in [0,1]: min over channels of the image mapped to [0,1]."""
    x = (_as_tensor(images).clamp(-1, 1) + 1.0) / 2.0
    return x.min(dim=1).values


def hat_pixels(images: torch.Tensor | np.ndarray, threshold: float = WHITE_THRESHOLD) -> torch.Tensor:
    """Bool mask [N,H,W] of pixels whose 3x3-blurred whiteness exceeds `threshold`."""
    w = whiteness(images)[:, None]
    blurred = F.avg_pool2d(F.pad(w, (1, 1, 1, 1), mode="replicate"), 3, stride=1)
    return blurred[:, 0] > threshold


def accessory_score(images: torch.Tensor | np.ndarray, threshold: float = WHITE_THRESHOLD) -> torch.Tensor:
    """Number of detected hat pixels per image, [N] float (a continuous presence score)."""
    return hat_pixels(images, threshold).flatten(1).sum(1).float()


def accessory_present(
    images: torch.Tensor | np.ndarray, threshold: float = WHITE_THRESHOLD, min_pixels: int = MIN_PIXELS
) -> torch.Tensor:
    """Bool [N]: does each image (in [-1,1], [N,3,32,32]) contain a hat?"""
    return accessory_score(images, threshold) >= min_pixels


def accessory_region(images: torch.Tensor | np.ndarray, dilate: int = 2, threshold: float = 0.6) -> torch.Tensor:
    """Bool [N,H,W]: near-white pixels (unblurred whiteness > `threshold`) dilated by `dilate` pixels.

    Use it to exclude the accessory's area when measuring how much of the rest of the image is preserved
    (e.g. take the union of the regions of the two images being compared).
    """
    m = (whiteness(images) > threshold).float()[:, None]
    if dilate > 0:
        m = F.max_pool2d(m, 2 * dilate + 1, stride=1, padding=dilate)
    return m[:, 0] > 0.5


def detector_accuracy(n: int = 512, seed: int = 0, noise_std: float = 0.0) -> float:
    """Accuracy of `accessory_present` on ground-truth renders (half with, half without hat; optional noise)."""
    from . import world

    batch = world.sample_scenes(n, seed=seed, hat_prob=0.5)
    imgs, masks = world.render(batch)
    if noise_std > 0:
        g = torch.Generator().manual_seed(seed + 1)
        imgs = imgs + noise_std * torch.randn(imgs.shape, generator=g)
    truth = masks.flatten(1).any(1)
    pred = accessory_present(imgs)
    return float((pred == truth).float().mean())
