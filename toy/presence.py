"""Deterministic, non-learned accessory detectors for toy-world images (one per accessory of `world.ACCESSORIES`).

Each detector marks the pixels that show its accessory; an image has the accessory when at least
`MIN_PIXELS[accessory]` pixels are marked. The world's colours make the three pixel tests disjoint:

- ``hat``: near-white pixels. `whiteness` = min over RGB (in [0, 1]), 3x3 box-blurred (isolated noisy pixels do
  not count), above 0.75. No shape or background colour has a min channel above 0.5.
- ``glasses``: near-black pixels. `darkness` = 1 - max over RGB, 2x2-averaged, above 0.8. No shape, stripe or
  background colour has a max channel below 0.3.
- ``stripes``: rows that alternate. The second difference of the luminance down a column,
  s(y) = L(y) - (L(y-1) + L(y+1)) / 2, averaged over three pixels along the row, must exceed 0.06 in magnitude and
  change sign between every two of four consecutive rows. A shape's edge or the one-row bridge of the glasses
  changes sign at most twice in a row; a period-2 texture changes sign at every row.

On ground-truth renders the smallest accessories score 17 (hat), 4 (glasses) and 12 (stripes) pixels, and
scenes without them 0; the detectors are right on 100 %, 100 % and 99.6 % of renders (stripes are missed on some
small triangles whose glasses cover the middle rows).
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

WHITE_THRESHOLD = 0.75
DARK_THRESHOLD = 0.8
STRIPE_THRESHOLD = 0.06
RUN_ROWS = 5
MIN_PIXELS: dict[str, int] = {"hat": 6, "glasses": 4, "stripes": 6}
DEFAULT_ACCESSORY = "hat"


def _as_tensor(images: torch.Tensor | np.ndarray) -> torch.Tensor:
    """[N,3,H,W] or [3,H,W] in [-1,1] -> float tensor [N,3,H,W] on CPU."""
    x = torch.as_tensor(np.asarray(images) if isinstance(images, np.ndarray) else images).detach().float().cpu()
    if x.ndim == 3:
        x = x[None]
    if x.ndim != 4 or x.shape[1] != 3:
        raise ValueError(f"expected images [N,3,H,W] in [-1,1], got shape {tuple(x.shape)}")
    return x


def _unit(images: torch.Tensor | np.ndarray) -> torch.Tensor:
    return (_as_tensor(images).clamp(-1, 1) + 1.0) / 2.0


def whiteness(images: torch.Tensor | np.ndarray) -> torch.Tensor:
    """Per-pixel whiteness [N,H,W] in [0,1]: min over channels of the image mapped to [0,1]."""
    return _unit(images).min(dim=1).values


def darkness(images: torch.Tensor | np.ndarray) -> torch.Tensor:
    """Per-pixel darkness [N,H,W] in [0,1]: 1 - max over channels of the image mapped to [0,1]."""
    return 1.0 - _unit(images).max(dim=1).values


def hat_pixels(images: torch.Tensor | np.ndarray, threshold: float = WHITE_THRESHOLD) -> torch.Tensor:
    """Bool mask [N,H,W] of pixels whose 3x3-blurred whiteness exceeds `threshold`."""
    w = whiteness(images)[:, None]
    blurred = F.avg_pool2d(F.pad(w, (1, 1, 1, 1), mode="replicate"), 3, stride=1)
    return blurred[:, 0] > threshold


def glasses_pixels(images: torch.Tensor | np.ndarray, threshold: float = DARK_THRESHOLD) -> torch.Tensor:
    """Bool mask [N,H,W] of pixels whose 2x2-averaged darkness (the pixel and its right/lower neighbours)
    exceeds `threshold`."""
    d = darkness(images)[:, None]
    blurred = F.avg_pool2d(F.pad(d, (0, 1, 0, 1), mode="replicate"), 2, stride=1)
    return blurred[:, 0] > threshold


def stripe_pixels(images: torch.Tensor | np.ndarray, threshold: float = STRIPE_THRESHOLD) -> torch.Tensor:
    """Bool mask [N,H,W] of pixels where the row-to-row second difference of the luminance alternates in sign
    (magnitude above `threshold`) over four consecutive rows starting at the pixel's row or ending at it."""
    lum = _unit(images).mean(dim=1, keepdim=True)  # [N,1,H,W]
    p = F.pad(lum, (0, 0, 1, 1), mode="replicate")
    s = p[:, :, 1:-1] - 0.5 * (p[:, :, :-2] + p[:, :, 2:])
    s = F.avg_pool2d(F.pad(s, (1, 1, 0, 0), mode="replicate"), (1, 3), stride=1)[:, 0]  # along the row, [N,H,W]
    strong = s.abs() > threshold
    ok = ((s[:, :-1] * s[:, 1:]) < 0) & strong[:, :-1] & strong[:, 1:]  # rows y and y+1 alternate, [N,H-1,W]
    length = ok.shape[1] - (RUN_ROWS - 2)
    run = ok[:, :length]
    for k in range(1, RUN_ROWS - 1):
        run = run & ok[:, k : k + length]  # rows y..y+RUN_ROWS-1 alternate
    run = run[:, :, :-1] & run[:, :, 1:]  # ... in two neighbouring columns
    out = torch.zeros_like(strong)
    for k in range(RUN_ROWS):
        for j in range(2):
            out[:, k : k + run.shape[1], j : j + run.shape[2]] |= run
    return out


PIXEL_TESTS = {"hat": hat_pixels, "glasses": glasses_pixels, "stripes": stripe_pixels}


def _check(accessory: str) -> str:
    if accessory not in PIXEL_TESTS:
        raise ValueError(f"unknown accessory {accessory!r}; known: {sorted(PIXEL_TESTS)}")
    return accessory


def accessory_pixels(
    images: torch.Tensor | np.ndarray, accessory: str = DEFAULT_ACCESSORY, threshold: float | None = None
) -> torch.Tensor:
    """Bool mask [N,H,W] of the pixels that show `accessory` (`threshold`: the pixel test's, None for the shipped
    one; `bench/detector_sensitivity.py` loosens it)."""
    test = PIXEL_TESTS[_check(accessory)]
    return test(images) if threshold is None else test(images, threshold)


def accessory_score(
    images: torch.Tensor | np.ndarray, accessory: str = DEFAULT_ACCESSORY, threshold: float | None = None
) -> torch.Tensor:
    """Number of detected `accessory` pixels per image, [N] float (a continuous presence score)."""
    return accessory_pixels(images, accessory, threshold).flatten(1).sum(1).float()


def accessory_present(
    images: torch.Tensor | np.ndarray, accessory: str = DEFAULT_ACCESSORY, threshold: float | None = None
) -> torch.Tensor:
    """Bool [N]: does each image (in [-1,1], [N,3,32,32]) show `accessory`?"""
    return accessory_score(images, accessory, threshold) >= MIN_PIXELS[_check(accessory)]


def accessory_region(
    images: torch.Tensor | np.ndarray, accessory: str = DEFAULT_ACCESSORY, dilate: int = 2
) -> torch.Tensor:
    """Bool [N,H,W]: the area of `accessory`, dilated by `dilate` pixels. For the hat and the glasses it is every
    pixel a little past the detector's threshold (whiteness > 0.6, darkness > 0.6); for stripes it is the detected
    stripe pixels, dilated by 2 more. Used to leave the accessory out when measuring how much of the rest of the
    image is kept (take the union of the regions of the two images being compared)."""
    _check(accessory)
    if accessory == "hat":
        m = whiteness(images) > 0.6
    elif accessory == "glasses":
        m = darkness(images) > 0.6
    else:
        m = stripe_pixels(images)
        dilate += 2  # the runs stop short of the narrow tip of a triangle and of the outermost rows
    m = m.float()[:, None]
    if dilate > 0:
        m = F.max_pool2d(m, 2 * dilate + 1, stride=1, padding=dilate)
    return m[:, 0] > 0.5


def detector_accuracy(n: int = 512, seed: int = 0, noise_std: float = 0.0, accessory: str = DEFAULT_ACCESSORY) -> float:
    """Accuracy of `accessory_present` on ground-truth renders (each accessory worn in half of the scenes, so the
    others are there to confuse it; optional Gaussian pixel noise)."""
    from . import world

    batch = world.sample_scenes(n, seed=seed, accessory_prob=0.5, stray_prob=0.5)
    imgs, masks = world.render(batch)
    if noise_std > 0:
        g = torch.Generator().manual_seed(seed + 1)
        imgs = imgs + noise_std * torch.randn(imgs.shape, generator=g)
    truth = masks[accessory].flatten(1).any(1)
    pred = accessory_present(imgs, accessory)
    return float((pred == truth).float().mean())
