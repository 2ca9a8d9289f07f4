"""README picture: an X/Y/Z plot over the delay on the bundled toy model, made by the X/Y/Z plot script itself.

    python -m toy.xyz_grid        # or: bash dev xyz-grid   -> docs/xyz_grid.png

The WebUI stand-in (`webui_standin/harness.py`) is started with the real extension and the bundled toy model, and
one X/Y/Z plot runs through the stand-in's X/Y/Z plot script (`harness.run_xyz`): X axis
"[Negative Delay] Delay (% of steps)" (default ``0%, 10%, 20%, 30%, 50%``), Y axis "Seed" (default ``2, 5, 7, 8``,
seeds on which the toy model draws glasses when there is no negative prompt). Prompt, negative prompt, sampler,
steps and CFG are the demo's (`toy/demo.py`): "red triangle on blue background", "glasses", Euler, 20 steps,
CFG 7, 32x32. A delay of 0 % is the extension switched off, bit for bit (the negative prompt from step 0).

The cells are drawn the way the WebUI draws an X/Y/Z grid (`images.draw_grid_annotations`): column headers are the
X values as the X/Y/Z script formats them ("[Negative Delay] Delay (% of steps): 20%"), word-wrapped to the
column's width; row headers are "Seed: N" in a left strip three quarters of a cell wide; font size
(cell width + cell height) // 25. The 32x32 images are upscaled (nearest neighbour) so they can be seen; a one-line
caption with the generation settings sits above the grid. Prints, per column, in how many rows the glasses
detector (`toy.presence`) still finds glasses.
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from toy.demo import DEFAULT_NEGATIVE, DEFAULT_PROMPT, ROOT, _ensure_paths, _text_size, parse_int_list

X_LABEL = "[Negative Delay] Delay (% of steps)"
"""The extension's X/Y/Z axis for a delay given as a share of the sampling steps (lib_negative_delay/webui/xyz.py)."""
Y_LABEL = "Seed"
DEFAULT_X_VALUES = "0%, 10%, 20%, 30%, 50%"
DEFAULT_SEEDS = "2,5,7,8"
DEFAULT_OUT = ROOT / "docs" / "xyz_grid.png"
ACCESSORY = DEFAULT_NEGATIVE
"""What the summary counts: the accessory the negative prompt names."""
MARGIN = 4
"""The X/Y/Z script's "Grid margins (px)" for the picture (the WebUI's default is 0; 4 keeps blue tiles apart)."""


@dataclass
class Grid:
    """The X/Y/Z plot laid out as a grid: ``images[row][col]`` float [3,H,W] in [0,1], the axes' labels as the X/Y/Z
    script formats them, and each cell's infotext (same layout)."""

    x_labels: list[str]
    y_labels: list[str]
    images: list[list[Any]]
    infotexts: list[list[str]]
    seeds: list[int]


def run_plot(
    x_values: str = DEFAULT_X_VALUES,
    seeds: list[int] | None = None,
    *,
    prompt: str = DEFAULT_PROMPT,
    negative_prompt: str = DEFAULT_NEGATIVE,
    steps: int = 20,
    cfg_scale: float = 7.0,
    sampler_name: str = "Euler",
) -> tuple[Any, Grid]:
    """Start the stand-in with the extension and the bundled model, run the X/Y/Z plot (X: delay in % of steps, Y:
    seed) and return the script's run (xyz_grid.XYZRun) and its cells as a `Grid`."""
    _ensure_paths()
    import harness
    import torch

    from toy.model import ToyLDM

    seeds = list(parse_int_list(DEFAULT_SEEDS) if seeds is None else seeds)
    harness.start(str(ROOT), ToyLDM.load())
    ext_log = logging.getLogger("negative_prompt_delay")
    level = ext_log.level
    ext_log.setLevel(logging.WARNING)  # one "negative prompt from ..." line per cell otherwise
    try:
        with torch.inference_mode():
            run = harness.run_xyz(
                X_LABEL,
                x_values,
                Y_LABEL,
                ", ".join(str(s) for s in seeds),
                prompt=prompt,
                negative_prompt=negative_prompt,
                steps=steps,
                cfg_scale=cfg_scale,
                sampler_name=sampler_name,
                width=32,
                height=32,
            )
    finally:
        ext_log.setLevel(level)
    return run, grid_from_run(run)


def grid_from_run(run: Any) -> Grid:
    """Lay the X/Y/Z run's cells out by their (iy, ix) and label the axes as the X/Y/Z script does
    (``opt.format_value(p, opt, value)``). A cell without an image (an error in the plot) raises RuntimeError."""
    import harness

    xyz = harness.xyz()
    x_opt, y_opt = xyz.find_axis_option(X_LABEL, False), xyz.find_axis_option(Y_LABEL, False)
    rows, cols = len(run.ys), len(run.xs)
    images: list[list[Any]] = [[None] * cols for _ in range(rows)]
    infotexts: list[list[str]] = [[""] * cols for _ in range(rows)]
    for cell in run.cells:
        if cell.iz != 0:
            continue
        if not cell.processed.images:
            raise RuntimeError(f"X/Y/Z cell {cell.x} / seed {cell.y} has no image (see the error above)")
        images[cell.iy][cell.ix] = cell.processed.images[0]
        infotexts[cell.iy][cell.ix] = cell.processed.infotexts[0]
    p = run.cells[0].p
    return Grid(
        x_labels=[str(x_opt.format_value(p, x_opt, x)) for x in run.xs],
        y_labels=[str(y_opt.format_value(p, y_opt, y)) for y in run.ys],
        images=images,
        infotexts=infotexts,
        seeds=[int(y) for y in run.ys],
    )


def grid_font(size: int) -> Any:
    """PIL's default font at `size` px (Pillow >= 10.1 with FreeType); else its fixed bitmap font (as toy/demo.py)."""
    from PIL import ImageFont

    try:
        return ImageFont.load_default(size=size)
    except (TypeError, ImportError, OSError):
        return ImageFont.load_default()


def wrap(draw: Any, text: str, font: Any, width: int) -> list[str]:
    """Word-wrap `text` to lines at most `width` px wide (a single long word stays whole), as the WebUI's grid
    annotations do."""
    lines = [""]
    for word in text.split():
        line = f"{lines[-1]} {word}".strip()
        if draw.textlength(line, font=font) <= width or not lines[-1]:
            lines[-1] = line
        else:
            lines.append(word)
    return lines


@dataclass(frozen=True)
class Layout:
    """Where things go in the picture (px): caption height, header strip heights, cell size and margin."""

    caption_h: int
    pad_top: int
    pad_left: int
    cell_w: int
    cell_h: int
    margin: int
    rows: int
    cols: int

    def cell_origin(self, row: int, col: int) -> tuple[int, int]:
        """Top-left corner of the cell at (row, col)."""
        return (
            self.pad_left + col * (self.cell_w + self.margin),
            self.caption_h + self.pad_top + row * (self.cell_h + self.margin),
        )

    @property
    def size(self) -> tuple[int, int]:
        """(width, height) of the grid part: caption, header strips and cells."""
        width = self.pad_left + self.cols * self.cell_w + (self.cols - 1) * self.margin
        height = self.caption_h + self.pad_top + self.rows * self.cell_h + (self.rows - 1) * self.margin
        return width, height


def render(grid: Grid, scale: int = 4, margin: int = MARGIN, caption: str = "") -> Any:
    """The labelled grid as a PIL image (see the module docstring for the look)."""
    from PIL import Image, ImageDraw

    rows, cols = len(grid.y_labels), len(grid.x_labels)
    _, h, w = grid.images[0][0].shape
    cell_w, cell_h = w * scale, h * scale
    fontsize = max((cell_w + cell_h) // 25, 6)
    spacing = fontsize // 2
    font = grid_font(fontsize)
    probe = ImageDraw.Draw(Image.new("RGB", (1, 1)))
    pad_left = cell_w * 3 // 4
    col_lines = [wrap(probe, text, font, cell_w) for text in grid.x_labels]
    row_lines = [wrap(probe, text, font, pad_left) for text in grid.y_labels]

    def block_height(lines: list[str]) -> int:
        return sum(_text_size(probe, t, font)[1] + spacing for t in lines) - spacing

    pad_top = max(block_height(lines) for lines in col_lines) + 2 * spacing
    caption_h = _text_size(probe, caption, font)[1] + 2 * spacing if caption else 0
    layout = Layout(caption_h, pad_top, pad_left, cell_w, cell_h, margin, rows, cols)
    width, height = layout.size
    width = max(width, _text_size(probe, caption, font)[0] + 2 * spacing if caption else 0)
    canvas = Image.new("RGB", (width, height), (255, 255, 255))
    draw = ImageDraw.Draw(canvas)
    if caption:
        draw.text((spacing, spacing), caption, fill=(0, 0, 0), font=font)

    def draw_block(center_x: float, top: float, lines: list[str]) -> None:
        for text in lines:
            left, up, right, bottom = draw.textbbox((0, 0), text, font=font)
            draw.text((center_x - (right - left) / 2 - left, top - up), text, fill=(0, 0, 0), font=font)
            top += bottom - up + spacing

    for c, lines in enumerate(col_lines):
        x, _ = layout.cell_origin(0, c)
        draw_block(x + cell_w / 2, caption_h + (pad_top - block_height(lines)) / 2, lines)
    for r, lines in enumerate(row_lines):
        _, y = layout.cell_origin(r, 0)
        draw_block(pad_left / 2, y + (cell_h - block_height(lines)) / 2, lines)
    for r in range(rows):
        for c in range(cols):
            canvas.paste(tile(grid.images[r][c], scale), layout.cell_origin(r, c))
    return canvas


def tile(image: Any, scale: int) -> Any:
    """A float [3,H,W] image in [0,1] as an RGB PIL image upscaled `scale` times (nearest neighbour)."""
    import torch
    from PIL import Image

    arr = (torch.as_tensor(image).float().clamp(0, 1) * 255).round().byte().permute(1, 2, 0).numpy()
    return Image.fromarray(arr, "RGB").resize((arr.shape[1] * scale, arr.shape[0] * scale), Image.NEAREST)


def accessory_rows(grid: Grid, accessory: str = ACCESSORY) -> list[list[bool]]:
    """Per column, per row: does the detector find `accessory` in the cell's image."""
    import torch

    from toy.presence import accessory_present

    out = []
    for c in range(len(grid.x_labels)):
        column = torch.stack([torch.as_tensor(row[c]).float() for row in grid.images])
        out.append([bool(v) for v in accessory_present(column * 2 - 1, accessory)])
    return out


def build_parser() -> argparse.ArgumentParser:
    """Command-line options."""
    ap = argparse.ArgumentParser(
        prog="python -m toy.xyz_grid",
        description="Render an X/Y/Z plot over the delay (% of steps) x seed on the bundled toy model through the "
        "WebUI stand-in's X/Y/Z plot script and the real extension.",
    )
    ap.add_argument(
        "--x-values", default=DEFAULT_X_VALUES, help=f"X values as typed into the X/Y/Z script ({DEFAULT_X_VALUES!r})"
    )
    ap.add_argument(
        "--seeds",
        type=lambda t: parse_int_list(t, "seed"),
        default=parse_int_list(DEFAULT_SEEDS),
        help=f"Y values: seeds, e.g. 2,5,7,8 or 1-4 (default {DEFAULT_SEEDS})",
    )
    ap.add_argument("--steps", type=int, default=20, help="sampling steps (default 20)")
    ap.add_argument("--scale", type=int, default=4, help="nearest-neighbour upscale of the 32x32 cells (default 4)")
    ap.add_argument("--out", default=str(DEFAULT_OUT), help="PNG to write (default docs/xyz_grid.png)")
    ap.add_argument("--threads", type=int, default=1, help="torch CPU threads (default 1: tiny images, deterministic)")
    return ap


def main(argv: list[str] | None = None) -> int:
    """Run the plot, write the PNG, print the per-column summary; returns the exit code (2 for bad input)."""
    args = build_parser().parse_args(argv)
    if args.steps < 1 or args.scale < 1 or args.threads < 1:
        print("error: --steps, --scale and --threads must be at least 1", file=sys.stderr)
        return 2
    import torch

    torch.set_num_threads(args.threads)
    started = time.perf_counter()
    try:
        _, grid = run_plot(args.x_values, args.seeds, steps=args.steps)
    except (ValueError, RuntimeError) as exc:  # bad axis values are rejected before any image is made
        print(f"error: {exc}", file=sys.stderr)
        return 2
    caption = (
        f'"{DEFAULT_PROMPT}"   negative: "{DEFAULT_NEGATIVE}"   Euler, {args.steps} steps, CFG 7   (0% = extension off)'
    )
    picture = render(grid, args.scale, caption=caption)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    picture.save(out, optimize=True)
    seconds = time.perf_counter() - started
    n = len(grid.seeds)
    print(f"{ACCESSORY} still drawn (detector toy.presence), per X column over seeds {grid.seeds}:")
    for label, present in zip(grid.x_labels, accessory_rows(grid), strict=True):
        rows = [s for s, hit in zip(grid.seeds, present, strict=True) if hit]
        print(f"  {label:<44} {sum(present)}/{n}  {'seeds ' + str(rows) if rows else ''}".rstrip())
    print(f"wrote {out} ({picture.size[0]}x{picture.size[1]} px, {seconds:.1f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
