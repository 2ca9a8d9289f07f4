"""The analysis sheet: when the negative prompt starts to act, for one image of one sampling pass. No WebUI imports.

Per step of the pass the host records a ``Column``: the picture the step predicts (x0 of the guided result), where the
negative prompt would change it (per-pixel mean over latent channels of ``|x0(negative) - x0(empty)|``) and the
detector's signal (the cosine between the negative's and the positive's pull, ``detector.alignment``). ``render``
draws them with PIL: a row of predicted pictures, the same pictures under a heat map, and the signal as a curve
with the auto-detect threshold, the step the image switched at and the steps 10 / 20 / 30 % of the schedule maps to.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch

from lib_negative_delay.detector import alignment

MAX_COLUMNS = 8  # pictures per pass; longer passes are subsampled
TILE = 80  # px per picture
SHARES = (10, 20, 30)  # % of the schedule marked on the curve


@dataclass
class Column:
    """One step of one image."""

    step: int  # the step of the pass (0-based)
    reference_step: int | None  # the txt2img step of the first pass at this noise level (None: unknown)
    negative: bool  # this step used the real negative prompt
    cosine: float  # alignment of the negative's pull with the positive's
    change: torch.Tensor  # [H, W] mean over channels of |x0(negative) - x0(empty)|
    x0: torch.Tensor | None = None  # [C, H, W] latent x0 of the guided result (set after the CFG combine)


@dataclass
class PassRecord:
    """The columns of one image in one pass, and what the pass's markers need."""

    title: str  # "txt2img, 20 steps", "hires pass, 10 steps", ...
    steps: int  # the steps of the pass
    marks: dict[str, int] = field(default_factory=dict)  # "10 %" -> the first step of the pass at that level
    columns: list[Column] = field(default_factory=list)

    def switch_step(self) -> int | None:
        """The first step that used the real negative prompt (None: never in this pass)."""
        return next((c.step for c in self.columns if c.negative), None)


def measure(pos: torch.Tensor, empty: torch.Tensor, negative: torch.Tensor) -> tuple[list[float], torch.Tensor]:
    """Per image (rows): the detector's cosine and the change map ``mean_c |negative - empty|`` of x0 predictions."""
    cosine = alignment(pos, empty, negative)
    change = (negative.float() - empty.float()).abs().mean(dim=1)
    return [float(c) for c in cosine], change


def pick_columns(columns: list[Column], switch: int | None, limit: int = MAX_COLUMNS) -> list[Column]:
    """At most ``limit`` columns spread over the pass: the first, the last, the switch step, and evenly between."""
    if len(columns) <= limit:
        return list(columns)
    n = len(columns)
    wanted = {0, n - 1}
    if switch is not None:
        wanted.add(next(i for i, c in enumerate(columns) if c.step == switch))
    spare = limit - len(wanted)
    for k in range(1, spare + 1):
        wanted.add(round(k * (n - 1) / (spare + 1)))
    i = 1
    while len(wanted) < limit:  # rounding met an index already taken
        wanted.add(i)
        i += 1
    return [columns[i] for i in sorted(wanted)[:limit]]


def _font(size: int) -> Any:
    from PIL import ImageFont

    try:
        return ImageFont.load_default(size=size)
    except TypeError:  # Pillow < 10.1: one bitmap size
        return ImageFont.load_default()


HEAT = (255, 235, 0)  # the overlay's colour: yellow reads over saturated shapes and dark backgrounds alike


def _heat(picture: Any, change: torch.Tensor) -> Any:
    """``picture`` (PIL RGB), darkened, under a yellow overlay whose opacity follows ``change`` against its own
    largest value: where in this step the negative would act, whatever its strength (printed beside it)."""
    from PIL import Image, ImageEnhance

    strength = (change.float() / max(float(change.max()), 1e-12)).clamp(0, 1) ** 1.5
    mask = Image.fromarray((strength.numpy() * 230).astype("uint8")).resize(picture.size, Image.BILINEAR)
    base = ImageEnhance.Brightness(picture).enhance(0.45)
    return Image.composite(Image.new("RGB", picture.size, HEAT), base, mask)


def render(record: PassRecord, pictures: dict[int, Any], threshold: float, heading: str) -> Any:
    """The sheet section of one pass. ``pictures``: step -> PIL picture of that step's x0, for the columns to show
    (``pick_columns``)."""
    from PIL import Image, ImageDraw

    switch = record.switch_step()
    shown = [c for c in record.columns if c.step in pictures]  # the host decoded the columns ``pick_columns`` chose
    width = max(2 * 12 + max(len(shown), 4) * (TILE + 4), 360)
    curve_h, text = 120, _font(12)
    height = 44 + 2 * (TILE + 18) + curve_h + 40
    sheet = Image.new("RGB", (width, height), (250, 250, 250))
    draw = ImageDraw.Draw(sheet)
    draw.text((12, 6), heading, fill=(20, 20, 20), font=_font(14))
    where = f"negative prompt from step {switch}" if switch is not None else "negative prompt not applied in this pass"
    draw.text((12, 24), f"{record.title}; {where}", fill=(60, 60, 60), font=text)
    y0 = 44
    for row, label in enumerate(("predicted image", "where the negative would change it")):
        y = y0 + row * (TILE + 18)
        draw.text((12, y), label, fill=(60, 60, 60), font=text)
        for k, column in enumerate(shown):
            x = 12 + k * (TILE + 4)
            picture = pictures[column.step].convert("RGB").resize((TILE, TILE), Image.BILINEAR)
            if row:
                picture = _heat(picture, column.change)
            sheet.paste(picture, (x, y + 14))
            if row:  # how strongly: the mean change over the picture, in latent units
                draw.text((x + 2, y + 16), f"{float(column.change.mean()):.2g}", fill=(255, 255, 255), font=text)
            if column.negative:  # a bar under the steps that used the real negative
                draw.rectangle((x, y + 15 + TILE, x + TILE - 1, y + 18 + TILE), fill=(30, 90, 200))
            if not row:
                draw.text((x + 2, y + 16), str(column.step), fill=(255, 255, 0), font=text)
    _curve(draw, record, threshold, switch, (12, y0 + 2 * (TILE + 18) + 4, width - 12, y0 + 2 * (TILE + 18) + curve_h))
    draw.text(
        (12, height - 30),
        "blue bar: steps with the negative prompt; yellow: where |x0(negative) - x0(empty)| is largest",
        fill=(60, 60, 60),
        font=text,
    )
    return sheet


def _curve(draw: Any, record: PassRecord, threshold: float, switch: int | None, box: tuple) -> None:
    """The detector's cosine over the steps of the pass, in ``box`` (left, top, right, bottom)."""
    left, top, right, bottom = box
    font = _font(11)
    draw.rectangle(box, outline=(180, 180, 180))
    inner_l, inner_r = left + 34, right - 6
    n = max(record.steps - 1, 1)

    def x_of(step: float) -> float:
        return inner_l + (inner_r - inner_l) * step / n

    def y_of(value: float) -> float:
        return top + 6 + (bottom - top - 22) * (1 - (max(-1.0, min(1.0, value)) + 1) / 2)

    for value in (-1.0, 0.0, 1.0):
        draw.text((left + 4, y_of(value) - 6), f"{value:+.0f}", fill=(120, 120, 120), font=font)
        draw.line((inner_l, y_of(value), inner_r, y_of(value)), fill=(225, 225, 225))
    ty = y_of(threshold)
    for x in range(int(inner_l), int(inner_r), 8):  # dashed: the auto-detect threshold of the sensitivity
        draw.line((x, ty, min(x + 4, inner_r), ty), fill=(230, 120, 0))
    draw.text((inner_r - 150, ty - 13), f"auto threshold {threshold:+.2f}", fill=(230, 120, 0), font=font)
    for label, step in record.marks.items():
        draw.line((x_of(step), bottom - 16, x_of(step), bottom - 10), fill=(90, 90, 90))
        draw.text((x_of(step) - 10, bottom - 12), label, fill=(90, 90, 90), font=font)
    if switch is not None:
        draw.line((x_of(switch), top + 2, x_of(switch), bottom - 16), fill=(30, 90, 200), width=2)
        draw.text((x_of(switch) + 3, top + 2), f"switch {switch}", fill=(30, 90, 200), font=font)
    points = [(x_of(c.step), y_of(c.cosine)) for c in record.columns]
    if len(points) > 1:
        draw.line(points, fill=(20, 20, 20), width=2)
    for x, y in points:
        draw.ellipse((x - 2, y - 2, x + 2, y + 2), fill=(20, 20, 20))


def stack(sections: list[Any]) -> Any:
    """The sections of one image (first pass, hires pass) one under the other."""
    from PIL import Image

    width = max(s.width for s in sections)
    sheet = Image.new("RGB", (width, sum(s.height for s in sections)), (250, 250, 250))
    y = 0
    for section in sections:
        sheet.paste(section, (0, y))
        y += section.height
    return sheet
