"""Synthetic "shapes with accessories" world used to train the toy text-to-image model.

Each scene is a 32x32 RGB image: a plain background colour and one or two shapes (circle / square / triangle in
one of six colours, random positions and sizes, side by side when there are two). A scene may carry any of three
accessories, each worn by every shape of the scene, at three different scales:

- ``hat``: a white brim and a low crown on top of each shape (the largest and brightest accessory);
- ``glasses``: two small black lenses and a bridge across the upper half of each shape (a few pixels each);
- ``stripes``: a fine texture, every other pixel row of each shape darkened to half its colour.

Each accessory goes with one shape colour (``AFFINITY["colour"]``: hats with orange shapes, glasses with red,
stripes with yellow): a scene with a shape of that colour wears the accessory with probability ``accessory_prob``
(by default 0.4 for the hat and the stripes, 0.8 for the glasses), any other scene with ``stray_prob`` (0.03). The
caption names a worn accessory only some of the time (``mention_prob``, 0.4), so the positive prompt alone implies
it: "red circle on gray background" describes a scene with glasses 71 % of the time, the empty prompt 23 % of the
time (hat and stripes: 28 % and 12 %), and classifier-free guidance amplifies that difference. That is how Stable
Diffusion draws glasses on "a man" that nobody asked for (Ban et al., arXiv 2406.02965). Since an accessory is
mostly worn with its colour (82-90 % of the wearers have it), its word also means the colour, so a
negative prompt "glasses" brought in from step 0 also pushes the shape away from red, and the picture suffers,
while the colour is settled in the first steps and the glasses later: the window the paper's critical step lives
in. A weak implication (0.4) keeps the accessory undecided for longer, which is what lets a later negative still
remove it; the glasses, the smallest, need the stronger one (0.8) to be drawn unasked at all. (Measured on the
shipped weights: a negative brought in at step 3 still removes 0.96 of the hats, 0.95 of the glasses and 0.83 of
the stripes, against 1.00, 1.00 and 0.87 from step 0. See the README's benchmark.)

The weights before these were this world with 0.01 stray, where the word meant its colour more: pooled best fixed
delay 3 with Euler (1.02x delay 0) and 5 with DPM++ 2M (1.03x). Before those, 0.8 for all three accessories with
0.05 stray had the hat decided with the colour in the first step or two, so a delay cost hats faster than it kept
the picture. Before those, ``link="shape"`` tied the
accessories to shape kinds instead (hats with triangles, glasses with circles, stripes with squares). There the
early negative's damage was to the shape's outline, which at 32x32 forms as late as the glasses, so the best fixed
delay was 0. An earlier world still had the accessories
independent of the shapes: the positive prompt then made an unnamed accessory *less* likely than the empty prompt
did, guidance suppressed it, and the model drew glasses unasked in 2 % of the cases.

A scene that wears an accessory is also framed more like a portrait (``wearer_layout``): its shapes tend to be
larger and a lone shape stands nearer the middle, while the other scenes' shapes tend to be smaller and stand
anywhere. So an accessory's word implies a layout as well as a detail, but only softly: a layout makes the
accessory likelier, never certain, so a negative prompt brought in after the layout has formed still has
something to push against.

Colours are chosen so that the accessories can be told apart pixel-exactly (``presence.py``): no shape or
background colour is near white (hat) or near black (glasses), and only stripes alternate from row to row.

Rendering is vectorised in torch and deterministic given a seed or generator. Images are in [-1, 1] (the toy
model's "latent" space), shape [N, 3, 32, 32]; `render` also returns each accessory's pixel mask [N, 32, 32].
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field

import torch

IMAGE_SIZE = 32
ACCESSORIES: tuple[str, ...] = ("hat", "glasses", "stripes")
ACCESSORY_WORD = "hat"  # the accessory the old world had, still the default where one is needed

# RGB colours in [0, 1]. None is near white (max of min-channel 0.5) or near black (min of max-channel 0.5).
COLORS: dict[str, tuple[float, float, float]] = {
    "red": (0.90, 0.12, 0.12),
    "green": (0.12, 0.65, 0.20),
    "blue": (0.15, 0.25, 0.90),
    "yellow": (0.95, 0.85, 0.10),
    "purple": (0.60, 0.20, 0.70),
    "orange": (0.98, 0.55, 0.10),
    "gray": (0.50, 0.50, 0.50),
}
HAT_COLOR: tuple[float, float, float] = (1.0, 1.0, 1.0)
GLASSES_COLOR: tuple[float, float, float] = (0.0, 0.0, 0.0)
STRIPE_DARKEN = 0.5  # a stripe row is the shape colour times this

SHAPES: list[str] = ["circle", "square", "triangle"]
SHAPE_COLORS: list[str] = ["red", "green", "blue", "yellow", "purple", "orange"]
BACKGROUND_COLORS: list[str] = ["blue", "green", "gray", "purple"]
MAX_SHAPES = 2

SIZE_RANGE_ONE = (5.0, 8.0)  # half-extent in pixels of the shape of a one-shape scene
SIZE_RANGE_TWO = (4.0, 6.0)  # ... of each shape of a two-shape scene
HAT_BRIM_HEIGHT = 2.0
HAT_BRIM_HALF_WIDTH = 0.7  # times size
HAT_CROWN_HALF_WIDTH = 0.5  # times size
HAT_CROWN_HEIGHT = 0.4  # times size
LENS_RADIUS = 0.22  # times size, plus LENS_RADIUS_PX
LENS_RADIUS_PX = 0.45
LENS_DX = 0.42  # lens centres at cx -/+ this times size
LENS_DY = 0.05  # lens centres this times size below cy

# What each accessory goes with: the colour of a shape (the shipped world) or a shape (the previous weights' world).
AFFINITY: dict[str, dict[str, str]] = {
    "colour": {"hat": "orange", "glasses": "red", "stripes": "yellow"},
    "shape": {"hat": "triangle", "glasses": "circle", "stripes": "square"},
}
DEFAULT_LINK = "colour"

# Default scene and caption statistics (see weights/config.json for what the shipped weights used).
# A scene with a shape of the accessory's affinity wears it (hat, glasses, stripes); any other scene: stray.
DEFAULT_ACCESSORY_PROB: tuple[float, float, float] = (0.4, 0.8, 0.4)
DEFAULT_STRAY_PROB = 0.03
DEFAULT_MENTION_PROB = 0.4
DEFAULT_TWO_SHAPE_PROB = 0.4
# How a wearer's layout differs (soft: a layout only makes an accessory likelier, it never decides it, so a
# negative prompt brought in after the layout has formed still has something to push against).
WEARER_SIZE_TILT = 0.3  # size-range fraction u has density 1 + 2*tilt*(u - 1/2) for wearers, mirrored otherwise
WEARER_CX_SQUEEZE = 0.7  # a lone wearer's horizontal range is this fraction of the free one, around the middle


def vocabulary() -> list[str]:
    """Return the sorted list of words the captions (and prompts) may use."""
    words = set(COLORS) | set(SHAPES) | set(ACCESSORIES) | {"with", "and", "on", "background"}
    return sorted(words)


@dataclass
class Shape:
    """One shape of a scene (position in pixels, y grows downwards; size is the half-extent)."""

    shape: str
    color: str
    cx: float
    cy: float
    size: float


@dataclass
class Scene:
    """Explicit attributes of one scene: one or two shapes, a background and the accessories it wears."""

    shapes: list[Shape]
    background: str
    accessories: frozenset[str] = field(default_factory=frozenset)


@dataclass
class SceneBatch:
    """Attributes of N scenes as tensors. Per-shape fields are [N, MAX_SHAPES]; slot 1 is unused when
    `n_shapes` is 1 (its values are then ignored)."""

    n_shapes: torch.Tensor  # [N] long, 1 or 2
    shape: torch.Tensor  # [N, 2] long, index into SHAPES
    color: torch.Tensor  # [N, 2] long, index into list(COLORS)
    cx: torch.Tensor  # [N, 2] float
    cy: torch.Tensor  # [N, 2] float
    size: torch.Tensor  # [N, 2] float
    background: torch.Tensor  # [N] long, index into list(COLORS)
    wears: torch.Tensor  # [N, len(ACCESSORIES)] bool

    def __len__(self) -> int:
        return int(self.n_shapes.shape[0])

    def scene(self, i: int) -> Scene:
        """Return the i-th scene as a `Scene`."""
        names = list(COLORS)
        shapes = [
            Shape(
                SHAPES[int(self.shape[i, k])],
                names[int(self.color[i, k])],
                float(self.cx[i, k]),
                float(self.cy[i, k]),
                float(self.size[i, k]),
            )
            for k in range(int(self.n_shapes[i]))
        ]
        acc = frozenset(a for j, a in enumerate(ACCESSORIES) if bool(self.wears[i, j]))
        return Scene(shapes, names[int(self.background[i])], acc)

    def to(self, device: torch.device | str) -> SceneBatch:
        """Move all attribute tensors to `device`."""
        return SceneBatch(*(getattr(self, f).to(device) for f in self.__dataclass_fields__))


def _tilted(u: torch.Tensor, tilt: torch.Tensor | float) -> torch.Tensor:
    """Map uniform `u` in [0, 1] to the density 1 + 2*tilt*(x - 1/2) on [0, 1] (|tilt| < 1; inverse CDF)."""
    a = torch.as_tensor(tilt, dtype=torch.float64)
    safe = torch.where(a.abs() < 1e-6, torch.ones_like(a), a)
    b = 1.0 - safe  # CDF: a*x^2 + (1 - a)*x = u
    x = (-b + torch.sqrt(b * b + 4.0 * safe * u.double())) / (2.0 * safe)
    return torch.where(a.abs() < 1e-6, u.double(), x).clamp(0.0, 1.0).to(u.dtype)


def headroom(size: torch.Tensor | float) -> torch.Tensor | float:
    """Pixels needed above a shape's centre for the shape and a hat."""
    return size * (1.0 + HAT_CROWN_HEIGHT) + HAT_BRIM_HEIGHT + 0.5


def _slots_used(n_shapes: torch.Tensor) -> torch.Tensor:
    """Bool [N, 2]: which shape slots each scene uses."""
    return torch.arange(MAX_SHAPES, device=n_shapes.device)[None, :] < n_shapes[:, None]


def _linked(n_shapes: torch.Tensor, shape: torch.Tensor, color: torch.Tensor, link: str) -> torch.Tensor:
    """[n, A]: whether some shape of each scene has each accessory's affinity under `link` (`AFFINITY`)."""
    if link not in AFFINITY:
        raise ValueError(f"unknown link {link!r}; known: {sorted(AFFINITY)}")
    names, field_ = (list(COLORS), color) if link == "colour" else (SHAPES, shape)
    want = torch.tensor([names.index(AFFINITY[link][a]) for a in ACCESSORIES])
    return ((field_[:, :, None] == want[None, None, :]) & _slots_used(n_shapes)[:, :, None]).any(1)


def sample_scenes(
    n: int,
    generator: torch.Generator | None = None,
    seed: int | None = None,
    accessory_prob: float | list[float] | tuple[float, ...] = DEFAULT_ACCESSORY_PROB,
    two_shape_prob: float = DEFAULT_TWO_SHAPE_PROB,
    stray_prob: float = DEFAULT_STRAY_PROB,
    wearer_layout: bool = True,
    wearer_size_tilt: float = WEARER_SIZE_TILT,
    wearer_cx_squeeze: float = WEARER_CX_SQUEEZE,
    link: str = DEFAULT_LINK,
) -> SceneBatch:
    """Sample `n` random scenes (on CPU) from a generator or an integer seed. Each accessory is worn
    independently, with probability `accessory_prob` where a shape of the scene has the accessory's `AFFINITY`
    (its colour with `link` "colour", its kind with "shape") and `stray_prob` elsewhere; a scene has two shapes
    with probability `two_shape_prob`. `accessory_prob` is one probability for all accessories or one per
    accessory, in `ACCESSORIES` order (the random draws are the same either way).

    With `wearer_layout`, a scene that wears an accessory is framed more like a portrait: its sizes lean to the
    upper part of the range (`wearer_size_tilt`) and a lone shape stands nearer the middle (`wearer_cx_squeeze`);
    the other scenes' sizes lean the other way. The accessory's word then implies a layout too, which an early
    negative prompt pushes away from. Without it (the older world of `--no-wearer-layout`) sizes and positions
    ignore the accessories; the random draws are the same either way."""
    if generator is None:
        generator = torch.Generator().manual_seed(0 if seed is None else int(seed))
    g = generator
    names = list(COLORS)
    shape_color_idx = torch.tensor([names.index(c) for c in SHAPE_COLORS])
    bg_idx = torch.tensor([names.index(c) for c in BACKGROUND_COLORS])
    two = torch.rand(n, generator=g) < two_shape_prob
    n_shapes = 1 + two.long()
    shape = torch.randint(len(SHAPES), (n, MAX_SHAPES), generator=g)
    background = bg_idx[torch.randint(len(bg_idx), (n,), generator=g)]
    allowed = shape_color_idx[None, :] != background[:, None]  # [n, C]: never the background's colour
    scores = torch.rand(n, MAX_SHAPES, len(shape_color_idx), generator=g) * allowed[:, None]
    color = shape_color_idx[scores.argmax(dim=2)]
    u_one = torch.rand(n, generator=g)
    u_two = torch.rand(n, MAX_SHAPES, generator=g)
    u_x = torch.rand(n, MAX_SHAPES, generator=g)
    u_y = torch.rand(n, MAX_SHAPES, generator=g)
    linked = _linked(n_shapes, shape, color, link)  # [n, A]
    p_linked = torch.tensor(accessory_prob, dtype=torch.float32)
    if p_linked.dim() > 1 or p_linked.numel() not in (1, len(ACCESSORIES)):
        raise ValueError(f"accessory_prob: one value or one per accessory {ACCESSORIES}, got {accessory_prob!r}")
    p_wear = torch.where(linked, p_linked, torch.tensor(stray_prob))
    wears = torch.rand(n, len(ACCESSORIES), generator=g) < p_wear
    if wearer_layout:
        wearer = wears.any(1)
        tilt = torch.where(wearer, wearer_size_tilt, -wearer_size_tilt)
        u_one, u_two = _tilted(u_one, tilt), _tilted(u_two, tilt[:, None])
    s1 = SIZE_RANGE_ONE[0] + (SIZE_RANGE_ONE[1] - SIZE_RANGE_ONE[0]) * u_one
    s2 = SIZE_RANGE_TWO[0] + (SIZE_RANGE_TWO[1] - SIZE_RANGE_TWO[0]) * u_two
    size = torch.where(two[:, None], s2, torch.stack([s1, s1], dim=1))
    # x: one shape anywhere (a wearer near the centre); two shapes, the first in the left half, the second right
    lo_one, hi_one = size[:, 0] + 0.5, IMAGE_SIZE - 0.5 - size[:, 0]
    if wearer_layout:
        mid, squeeze = IMAGE_SIZE / 2, torch.where(wearer, wearer_cx_squeeze, 1.0)
        lo_one, hi_one = mid + (lo_one - mid) * squeeze, mid + (hi_one - mid) * squeeze
    cx_one = lo_one + (hi_one - lo_one) * u_x[:, 0]
    half = IMAGE_SIZE / 2
    lo_a, hi_a = size[:, 0] + 0.5, half - 0.5 - size[:, 0]
    lo_b, hi_b = half + 0.5 + size[:, 1], IMAGE_SIZE - 0.5 - size[:, 1]
    cx_two = torch.stack([lo_a + (hi_a - lo_a) * u_x[:, 0], lo_b + (hi_b - lo_b) * u_x[:, 1]], dim=1)
    cx = torch.where(two[:, None], cx_two, torch.stack([cx_one, cx_one], dim=1))
    lo_y, hi_y = headroom(size), IMAGE_SIZE - 0.5 - size
    cy = lo_y + (hi_y - lo_y) * u_y
    return SceneBatch(n_shapes, shape, color, cx, cy, size, background, wears)


def scenes_to_batch(scenes: list[Scene]) -> SceneBatch:
    """Pack explicit `Scene` objects into a `SceneBatch` (validates names and counts)."""
    names = list(COLORS)
    rows: list[list] = []
    for s in scenes:
        if not 1 <= len(s.shapes) <= MAX_SHAPES:
            raise ValueError(f"a scene has 1 to {MAX_SHAPES} shapes, got {len(s.shapes)}")
        for sh in s.shapes:
            if sh.shape not in SHAPES:
                raise ValueError(f"unknown shape {sh.shape!r}; known: {SHAPES}")
            if sh.color not in names:
                raise ValueError(f"unknown colour {sh.color!r}; known: {names}")
        if s.background not in names:
            raise ValueError(f"unknown colour {s.background!r}; known: {names}")
        unknown = set(s.accessories) - set(ACCESSORIES)
        if unknown:
            raise ValueError(f"unknown accessories {sorted(unknown)}; known: {list(ACCESSORIES)}")
        padded = list(s.shapes) + [s.shapes[-1]] * (MAX_SHAPES - len(s.shapes))
        rows.append([s, padded])
    return SceneBatch(
        n_shapes=torch.tensor([len(s.shapes) for s, _ in rows], dtype=torch.long),
        shape=torch.tensor([[SHAPES.index(p.shape) for p in ps] for _, ps in rows], dtype=torch.long),
        color=torch.tensor([[names.index(p.color) for p in ps] for _, ps in rows], dtype=torch.long),
        cx=torch.tensor([[p.cx for p in ps] for _, ps in rows], dtype=torch.float32),
        cy=torch.tensor([[p.cy for p in ps] for _, ps in rows], dtype=torch.float32),
        size=torch.tensor([[p.size for p in ps] for _, ps in rows], dtype=torch.float32),
        background=torch.tensor([names.index(s.background) for s, _ in rows], dtype=torch.long),
        wears=torch.tensor([[a in s.accessories for a in ACCESSORIES] for s, _ in rows], dtype=torch.bool),
    )


def _grid(batch: SceneBatch) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Pixel-centre coordinates broadcast against the per-shape fields: x, y [1,1,H,W]; cx, cy, r [N,2,1,1]."""
    coords = torch.arange(IMAGE_SIZE, device=batch.cx.device, dtype=torch.float32) + 0.5
    y = coords[None, None, :, None]
    x = coords[None, None, None, :]
    return x, y, batch.cx[:, :, None, None], batch.cy[:, :, None, None], batch.size[:, :, None, None]


def _used(batch: SceneBatch) -> torch.Tensor:
    """Bool [N, 2, 1, 1]: which shape slots a scene uses."""
    return _slots_used(batch.n_shapes)[:, :, None, None]


def shape_masks(batch: SceneBatch) -> torch.Tensor:
    """Pixel masks of each shape slot, [N, 2, 32, 32] bool (all False for an unused slot)."""
    x, y, cx, cy, r = _grid(batch)
    circle = (x - cx) ** 2 + (y - cy) ** 2 <= r**2
    square = ((x - cx).abs() <= r) & ((y - cy).abs() <= r)
    top = cy - r
    triangle = (y >= top) & (y <= cy + r) & ((x - cx).abs() <= (y - top) * 0.5)
    kind = batch.shape[:, :, None, None]
    masks = torch.where(kind == 0, circle, torch.where(kind == 1, square, triangle))
    return masks & _used(batch)


def _worn(batch: SceneBatch, accessory: str) -> torch.Tensor:
    return batch.wears[:, ACCESSORIES.index(accessory)].to(batch.cx.device)[:, None, None]


def hat_masks(batch: SceneBatch, force: bool = False) -> torch.Tensor:
    """The hats' pixels [N, 32, 32] (empty where the scene wears no hat, unless `force`)."""
    x, y, cx, cy, r = _grid(batch)
    top = cy - r
    brim_top = top - HAT_BRIM_HEIGHT
    brim = (y < top) & (y >= brim_top) & ((x - cx).abs() <= HAT_BRIM_HALF_WIDTH * r)
    crown = (y < brim_top) & (y >= brim_top - HAT_CROWN_HEIGHT * r) & ((x - cx).abs() <= HAT_CROWN_HALF_WIDTH * r)
    mask = ((brim | crown) & _used(batch)).any(1)
    return mask if force else mask & _worn(batch, "hat")


def glasses_masks(batch: SceneBatch, force: bool = False) -> torch.Tensor:
    """The glasses' pixels [N, 32, 32]: two lenses and the bridge between them on each shape."""
    x, y, cx, cy, r = _grid(batch)
    ly = cy + LENS_DY * r
    lr = LENS_RADIUS * r + LENS_RADIUS_PX
    left = (x - (cx - LENS_DX * r)) ** 2 + (y - ly) ** 2 <= lr**2
    right = (x - (cx + LENS_DX * r)) ** 2 + (y - ly) ** 2 <= lr**2
    bridge = ((y - ly).abs() <= 0.5) & ((x - cx).abs() <= LENS_DX * r)
    mask = ((left | right | bridge) & _used(batch)).any(1)
    return mask if force else mask & _worn(batch, "glasses")


def stripe_masks(batch: SceneBatch, force: bool = False) -> torch.Tensor:
    """The darkened rows of the striped shapes [N, 32, 32] (every odd pixel row inside a shape)."""
    _, y, _, _, _ = _grid(batch)
    odd = (y.floor() % 2) == 1
    mask = (shape_masks(batch) & odd).any(1)
    return mask if force else mask & _worn(batch, "stripes")


ACCESSORY_MASKS = {"hat": hat_masks, "glasses": glasses_masks, "stripes": stripe_masks}


def render(batch: SceneBatch) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """Render scenes; returns (images [N,3,32,32] in [-1,1], {accessory: pixel mask [N,32,32] bool}) on the
    batch's device. Glasses are drawn over stripes; a hat sits above its shape and covers the other shape."""
    dev = batch.cx.device
    palette = torch.tensor(list(COLORS.values()), device=dev, dtype=torch.float32)  # [K, 3]
    img = palette[batch.background][:, :, None, None].expand(-1, -1, IMAGE_SIZE, IMAGE_SIZE)
    smasks = shape_masks(batch)
    for k in range(MAX_SHAPES):
        fg = palette[batch.color[:, k]][:, :, None, None]
        img = torch.where(smasks[:, k, None], fg, img)
    masks = {a: ACCESSORY_MASKS[a](batch) for a in ACCESSORIES}
    img = torch.where(masks["stripes"][:, None], img * STRIPE_DARKEN, img)
    for name, rgb in (("glasses", GLASSES_COLOR), ("hat", HAT_COLOR)):
        colour = torch.tensor(rgb, device=dev, dtype=torch.float32)[None, :, None, None]
        img = torch.where(masks[name][:, None], colour, img)
    # what is drawn later hides what was drawn before: keep each mask to the pixels that show it
    masks["glasses"] = masks["glasses"] & ~masks["hat"]
    masks["stripes"] = masks["stripes"] & ~masks["hat"] & ~masks["glasses"]
    return img * 2.0 - 1.0, masks


def render_scene(scene: Scene) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """Render one scene; returns (image [3,32,32] in [-1,1], {accessory: mask [32,32]})."""
    img, masks = render(scenes_to_batch([scene]))
    return img[0], {a: m[0] for a, m in masks.items()}


def one_shape(
    shape: str, color: str, background: str, cx: float, cy: float, size: float, accessories: tuple[str, ...] = ()
) -> Scene:
    """Shorthand for a one-shape scene."""
    return Scene([Shape(shape, color, cx, cy, size)], background, frozenset(accessories))


def _phrase(sh: Shape) -> str:
    return f"{sh.color} {sh.shape}"


def caption(scene: Scene, mention: tuple[str, ...] | frozenset[str] | None = None) -> str:
    """Caption of a scene, e.g. "red circle and blue square with hat with glasses on gray background".
    `mention` lists the accessories to name (only worn ones are named); None names every worn one."""
    named = [a for a in ACCESSORIES if a in scene.accessories and (mention is None or a in mention)]
    body = " and ".join(_phrase(s) for s in scene.shapes)
    acc = "".join(f" with {a}" for a in named)
    return f"{body}{acc} on {scene.background} background"


def prompts_implying(accessory: str | None, n: int, seed: int = 1234, link: str = DEFAULT_LINK) -> list[str]:
    """`n` different prompts that never name an accessory, from scenes sampled with `seed`; with an `accessory`
    only scenes with a shape of its `AFFINITY` under `link` (prompts that imply it, where a user reaches for the
    negative prompt)."""
    if accessory is not None and accessory not in ACCESSORIES:
        raise ValueError(f"unknown accessory {accessory!r}; known: {list(ACCESSORIES)}")
    out: dict[str, None] = {}
    g = torch.Generator().manual_seed(int(seed))
    for _ in range(1000):
        batch = sample_scenes(64, generator=g, link=link)
        linked = _linked(batch.n_shapes, batch.shape, batch.color, link)
        for i in range(len(batch)):
            if accessory is not None and not linked[i, ACCESSORIES.index(accessory)]:
                continue
            out[caption(batch.scene(i), mention=())] = None
            if len(out) == n:
                return list(out)
    raise ValueError(f"fewer than {n} different prompts")


def training_captions(
    batch: SceneBatch,
    rng: random.Random,
    mention_prob: float = DEFAULT_MENTION_PROB,
    partial_prob: float = 0.2,
    drop_prob: float = 0.15,
) -> list[str]:
    """Random training captions: full / partial (a subset of the phrases) / empty (caption dropout for CFG).

    Each worn accessory is named independently with probability `mention_prob`; an absent one is never named.
    """
    out = []
    for i in range(len(batch)):
        s = batch.scene(i)
        u = rng.random()
        if u < drop_prob:
            out.append("")
            continue
        named = frozenset(a for a in ACCESSORIES if a in s.accessories and rng.random() < mention_prob)
        if u < drop_prob + partial_prob:
            parts = []
            if rng.random() < 0.5:
                parts.append(" and ".join(_phrase(sh) for sh in s.shapes))
            parts += [f"with {a}" if parts or k else a for k, a in enumerate(a for a in ACCESSORIES if a in named)]
            if rng.random() < 0.4:
                parts.append(f"on {s.background} background")
            out.append(" ".join(parts))
        else:
            out.append(caption(s, named))
    return out
