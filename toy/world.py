"""Synthetic "shapes with hats" world used to train the toy text-to-image model.

Each scene is a 32x32 RGB image: a plain background colour, one main shape (circle / square / triangle in one
of several colours, random position and size) and, in 60% of the scenes, a white *hat* (a brim plus a
crown) sitting on top of the shape. The caption names the hat only some of the time, so a model trained on this
world also draws hats when the prompt does not ask for them, like "glasses" in Ban et al. (arXiv 2406.02965):
with the defaults (hat in 60% of scenes, named in 30% of those), P(hat | caption without "hat") = 0.42 / 0.82.

Rendering is vectorised in torch (works on CPU or CUDA) and is deterministic given a seed / generator.
Images are returned in [-1, 1] (the toy model's "latent" space), shape [N, 3, 32, 32], together with the
hat's pixel mask [N, 32, 32] (bool, all False when there is no hat).
"""

from __future__ import annotations

import random
from dataclasses import dataclass

import torch

IMAGE_SIZE = 32
ACCESSORY_WORD = "hat"

# RGB colours in [0, 1]. None of them is near white, so white pixels mean "hat".
COLORS: dict[str, tuple[float, float, float]] = {
    "red": (0.90, 0.12, 0.12),
    "green": (0.12, 0.65, 0.20),
    "blue": (0.15, 0.25, 0.90),
    "yellow": (0.95, 0.85, 0.10),
    "purple": (0.60, 0.20, 0.70),
    "orange": (0.98, 0.55, 0.10),
    "black": (0.05, 0.05, 0.05),
    "gray": (0.50, 0.50, 0.50),
}
HAT_COLOR: tuple[float, float, float] = (1.0, 1.0, 1.0)

SHAPES: list[str] = ["circle", "square", "triangle"]
SHAPE_COLORS: list[str] = ["red", "green", "blue", "yellow", "purple", "orange"]
BACKGROUND_COLORS: list[str] = ["blue", "green", "black", "gray"]

SIZE_RANGE = (5.0, 9.0)  # half-extent of the main shape in pixels
HAT_BRIM_HEIGHT = 2.0
HAT_BRIM_HALF_WIDTH = 0.85  # times size
HAT_CROWN_HALF_WIDTH = 0.5  # times size
HAT_CROWN_HEIGHT = 0.8  # times size

# Default caption statistics (the shipped weights were trained with these; see weights/config.json).
DEFAULT_HAT_PROB = 0.6
DEFAULT_MENTION_PROB = 0.3


def vocabulary() -> list[str]:
    """Return the sorted list of words the captions (and prompts) may use."""
    words = set(COLORS) | set(SHAPES) | {ACCESSORY_WORD, "with", "on", "background"}
    return sorted(words)


@dataclass
class Scene:
    """Explicit attributes of one scene (positions in pixels, y grows downwards)."""

    shape: str
    color: str
    background: str
    cx: float
    cy: float
    size: float
    hat: bool


@dataclass
class SceneBatch:
    """Attributes of N scenes as tensors (indices into SHAPES / COLORS order)."""

    shape: torch.Tensor  # [N] long, index into SHAPES
    color: torch.Tensor  # [N] long, index into list(COLORS)
    background: torch.Tensor  # [N] long, index into list(COLORS)
    cx: torch.Tensor  # [N] float
    cy: torch.Tensor  # [N] float
    size: torch.Tensor  # [N] float
    hat: torch.Tensor  # [N] bool

    def __len__(self) -> int:
        return int(self.shape.shape[0])

    def scene(self, i: int) -> Scene:
        """Return the i-th scene as a `Scene`."""
        names = list(COLORS)
        return Scene(
            shape=SHAPES[int(self.shape[i])],
            color=names[int(self.color[i])],
            background=names[int(self.background[i])],
            cx=float(self.cx[i]),
            cy=float(self.cy[i]),
            size=float(self.size[i]),
            hat=bool(self.hat[i]),
        )

    def to(self, device: torch.device | str) -> SceneBatch:
        """Move all attribute tensors to `device`."""
        return SceneBatch(*(getattr(self, f).to(device) for f in self.__dataclass_fields__))


def _uniform(n: int, lo: torch.Tensor | float, hi: torch.Tensor | float, g: torch.Generator) -> torch.Tensor:
    return lo + (hi - lo) * torch.rand(n, generator=g)


def position_range(size: torch.Tensor | float) -> tuple:
    """Allowed (cx_lo, cx_hi, cy_lo, cy_hi) for a shape of half-extent `size` (room for a hat is always kept)."""
    cx_lo = size + 0.5
    cx_hi = IMAGE_SIZE - 0.5 - size
    cy_lo = size * (1.0 + HAT_CROWN_HEIGHT) + HAT_BRIM_HEIGHT + 0.5
    cy_hi = IMAGE_SIZE - 0.5 - size
    return cx_lo, cx_hi, cy_lo, cy_hi


def sample_scenes(
    n: int, generator: torch.Generator | None = None, seed: int | None = None, hat_prob: float = DEFAULT_HAT_PROB
) -> SceneBatch:
    """Sample `n` random scene attribute sets (on CPU) from a generator or an integer seed."""
    if generator is None:
        generator = torch.Generator().manual_seed(0 if seed is None else int(seed))
    g = generator
    names = list(COLORS)
    shape_color_idx = torch.tensor([names.index(c) for c in SHAPE_COLORS])
    bg_idx = torch.tensor([names.index(c) for c in BACKGROUND_COLORS])
    shape = torch.randint(len(SHAPES), (n,), generator=g)
    background = bg_idx[torch.randint(len(bg_idx), (n,), generator=g)]
    # shape colour differs from background colour: draw among the allowed ones
    allowed = shape_color_idx[None, :] != background[:, None]  # [n, C]
    scores = torch.rand(n, len(shape_color_idx), generator=g) * allowed
    color = shape_color_idx[scores.argmax(dim=1)]
    size = _uniform(n, SIZE_RANGE[0], SIZE_RANGE[1], g)
    cx_lo, cx_hi, cy_lo, cy_hi = position_range(size)
    cx = _uniform(n, cx_lo, cx_hi, g)
    cy = _uniform(n, cy_lo, cy_hi, g)
    hat = torch.rand(n, generator=g) < hat_prob
    return SceneBatch(shape=shape, color=color, background=background, cx=cx, cy=cy, size=size, hat=hat)


def scenes_to_batch(scenes: list[Scene]) -> SceneBatch:
    """Pack explicit `Scene` objects into a `SceneBatch` (validates names)."""
    names = list(COLORS)
    for s in scenes:
        if s.shape not in SHAPES:
            raise ValueError(f"unknown shape {s.shape!r}; known: {SHAPES}")
        for c in (s.color, s.background):
            if c not in names:
                raise ValueError(f"unknown colour {c!r}; known: {names}")
    return SceneBatch(
        shape=torch.tensor([SHAPES.index(s.shape) for s in scenes], dtype=torch.long),
        color=torch.tensor([names.index(s.color) for s in scenes], dtype=torch.long),
        background=torch.tensor([names.index(s.background) for s in scenes], dtype=torch.long),
        cx=torch.tensor([s.cx for s in scenes], dtype=torch.float32),
        cy=torch.tensor([s.cy for s in scenes], dtype=torch.float32),
        size=torch.tensor([s.size for s in scenes], dtype=torch.float32),
        hat=torch.tensor([s.hat for s in scenes], dtype=torch.bool),
    )


def shape_masks(batch: SceneBatch) -> torch.Tensor:
    """Return the main shape's pixel mask [N, 32, 32] (bool)."""
    dev = batch.cx.device
    coords = torch.arange(IMAGE_SIZE, device=dev, dtype=torch.float32) + 0.5
    y = coords[None, :, None]
    x = coords[None, None, :]
    cx, cy, r = batch.cx[:, None, None], batch.cy[:, None, None], batch.size[:, None, None]
    circle = (x - cx) ** 2 + (y - cy) ** 2 <= r**2
    square = ((x - cx).abs() <= r) & ((y - cy).abs() <= r)
    top = cy - r
    triangle = (y >= top) & (y <= cy + r) & ((x - cx).abs() <= (y - top) * 0.5)
    kind = batch.shape[:, None, None]
    return torch.where(kind == 0, circle, torch.where(kind == 1, square, triangle))


def hat_masks(batch: SceneBatch, force: bool = False) -> torch.Tensor:
    """Return the hat's pixel mask [N, 32, 32] (empty where there is no hat, unless `force`)."""
    dev = batch.cx.device
    coords = torch.arange(IMAGE_SIZE, device=dev, dtype=torch.float32) + 0.5
    y = coords[None, :, None]
    x = coords[None, None, :]
    cx, cy, r = batch.cx[:, None, None], batch.cy[:, None, None], batch.size[:, None, None]
    top = cy - r
    brim_top = top - HAT_BRIM_HEIGHT
    brim = (y < top) & (y >= brim_top) & ((x - cx).abs() <= HAT_BRIM_HALF_WIDTH * r)
    crown = (y < brim_top) & (y >= brim_top - HAT_CROWN_HEIGHT * r) & ((x - cx).abs() <= HAT_CROWN_HALF_WIDTH * r)
    mask = brim | crown
    if not force:
        mask = mask & batch.hat[:, None, None].to(dev)
    return mask


def render(batch: SceneBatch) -> tuple[torch.Tensor, torch.Tensor]:
    """Render scenes; returns (images [N,3,32,32] in [-1,1], hat mask [N,32,32] bool) on the batch's device."""
    dev = batch.cx.device
    palette = torch.tensor(list(COLORS.values()), device=dev, dtype=torch.float32)  # [K, 3]
    bg = palette[batch.background][:, :, None, None]
    fg = palette[batch.color][:, :, None, None]
    smask = shape_masks(batch)[:, None]
    hmask = hat_masks(batch)
    img = torch.where(smask, fg, bg)
    hat_rgb = torch.tensor(HAT_COLOR, device=dev, dtype=torch.float32)[None, :, None, None]
    img = torch.where(hmask[:, None], hat_rgb, img)
    return img * 2.0 - 1.0, hmask


def render_scene(
    shape: str, color: str, background: str, cx: float, cy: float, size: float, hat: bool
) -> tuple[torch.Tensor, torch.Tensor]:
    """Render one scene from explicit attributes; returns (image [3,32,32] in [-1,1], hat mask [32,32])."""
    img, mask = render(scenes_to_batch([Scene(shape, color, background, cx, cy, size, hat)]))
    return img[0], mask[0]


def caption(scene: Scene, mention_hat: bool = True) -> str:
    """Full caption of a scene, e.g. "red circle with hat on blue background" (hat named only if asked)."""
    hat = " with hat" if (scene.hat and mention_hat) else ""
    return f"{scene.color} {scene.shape}{hat} on {scene.background} background"


def training_captions(
    batch: SceneBatch,
    rng: random.Random,
    mention_prob: float = DEFAULT_MENTION_PROB,
    partial_prob: float = 0.2,
    drop_prob: float = 0.15,
) -> list[str]:
    """Random training captions: full / partial (subsets of the phrases) / empty (caption dropout for CFG).

    A present hat is named with probability `mention_prob`; an absent hat is never named.
    """
    out = []
    names = list(COLORS)
    cols = [batch.shape.tolist(), batch.color.tolist(), batch.background.tolist(), batch.hat.tolist()]
    for shape_i, color_i, bg_i, hat in zip(*cols, strict=True):
        s = Scene(SHAPES[shape_i], names[color_i], names[bg_i], 0.0, 0.0, 0.0, bool(hat))
        u = rng.random()
        if u < drop_prob:
            out.append("")
            continue
        mention = s.hat and rng.random() < mention_prob
        if u < drop_prob + partial_prob:
            parts = []
            if rng.random() < 0.5:
                parts.append(f"{s.color} {s.shape}" if rng.random() < 0.7 else rng.choice([s.color, s.shape]))
            if mention:
                parts.append("with hat" if parts else "hat")
            if rng.random() < 0.4:
                parts.append(f"on {s.background} background")
            out.append(" ".join(parts))
        else:
            out.append(caption(s, mention_hat=mention))
    return out
