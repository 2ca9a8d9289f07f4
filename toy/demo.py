"""Demo grid on the bundled toy model: the negative prompt from step 0 versus delayed by N steps.

    python -m toy.demo            # or: bash dev demo
    python -m toy.demo --prompt "red circle on blue background" --seeds 1-8 --delays 2,4,6,8

Everything goes through the WebUI stand-in (`webui_standin/harness.py`) with the real extension script loaded
the way the WebUI loads it, so the pictures are what the extension does in a txt2img run. Rows are seeds;
columns are "no negative" (empty negative prompt), "negative from step 0" (extension disabled) and
"from step N" for each delay N (extension enabled with that delay). Writes `<out>/demo.png` (a labelled grid)
and `<out>/demo.json` (per column: the accessory's rate over the seeds, its per-seed presence, and how much of the
picture outside the accessory's area is preserved relative to the "no negative" column, as PSNR and SSIM). The
negative prompt names one of the toy world's accessories (hat, glasses, stripes): that is what is measured.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
TITLE = "Negative Prompt Delay"
DEFAULT_PROMPT = "red triangle on blue background"
DEFAULT_SEEDS = "1-8"
DEFAULT_DELAYS = "2,3,4"
DEFAULT_NEGATIVE = "glasses"
PSNR_CAP_DB = 100.0
"""PSNR of identical pixels is infinite; means and JSON values are capped at this many dB."""


def _ensure_paths() -> None:
    for p in (str(ROOT / "webui_standin"), str(ROOT)):
        if p not in sys.path:
            sys.path.insert(0, p)


def parse_int_list(text: str, what: str = "value") -> list[int]:
    """Parse "1-6", "1,2,3" or "1-3,8" into a list of ints (ranges inclusive, order kept)."""
    out: list[int] = []
    for part in str(text).replace(" ", "").split(","):
        if not part:
            continue
        try:
            if "-" in part[1:]:
                cut = part.index("-", 1)
                lo, hi = int(part[:cut]), int(part[cut + 1 :])
                if hi < lo:
                    raise ValueError
                out.extend(range(lo, hi + 1))
            else:
                out.append(int(part))
        except ValueError:
            raise argparse.ArgumentTypeError(f"bad {what} list {text!r}: use e.g. 1-6 or 1,2,3") from None
    if not out:
        raise argparse.ArgumentTypeError(f"empty {what} list {text!r}")
    return out


def consecutive_runs(seeds: list[int]) -> list[list[int]]:
    """Split seeds into runs of consecutive integers ([1,2,3,7,8] -> [[1,2,3],[7,8]]): one generation per run
    (batch_size = run length, seed = first seed; image i of a batch gets seed + i)."""
    runs: list[list[int]] = []
    for s in seeds:
        if runs and s == runs[-1][-1] + 1:
            runs[-1].append(s)
        else:
            runs.append([s])
    return runs


@dataclass
class Column:
    """One column of the grid: what is generated and, after `run`, the images and measurements."""

    label: str
    negative_prompt: str
    enabled: bool
    delay: int
    images: Any = None  # float [N,3,H,W] in [0,1]
    present: list[bool] = field(default_factory=list)
    psnr: list[float] = field(default_factory=list)
    ssim: list[float] = field(default_factory=list)
    infotext: str = ""


def make_columns(negative: str, delays: list[int]) -> list[Column]:
    """The reference column, the plain negative prompt and one column per delay."""
    cols = [Column("no negative", "", False, 0), Column("negative from step 0", negative, False, 0)]
    cols += [Column(f"from step {d}", negative, True, d) for d in delays]
    return cols


def generate(harness: Any, col: Column, args: argparse.Namespace, seeds: list[int], bar: Any = None) -> tuple[Any, str]:
    """Images [N,3,H,W] in [0,1] for `seeds` (one txt2img per consecutive run) and the first infotext; `bar` (a
    tqdm) advances by one per generation."""
    import torch

    images, infotext = [], ""
    for run in consecutive_runs(seeds):
        res = harness.txt2img(
            prompt=args.prompt,
            negative_prompt=col.negative_prompt,
            steps=args.steps,
            sampler_name=args.sampler,
            scheduler=args.scheduler,
            seed=run[0],
            batch_size=len(run),
            cfg_scale=args.cfg,
            width=32,
            height=32,
            alwayson_scripts={TITLE: {"args": [col.enabled, col.delay]}},
        )
        images.extend(res.images)
        infotext = infotext or res.infotexts[0]
        if bar is not None:
            bar.update(1)
    return torch.stack([torch.as_tensor(im).float() for im in images]), infotext


def _cap(x: float) -> float:
    return PSNR_CAP_DB if math.isinf(x) else min(float(x), PSNR_CAP_DB)


def measure(columns: list[Column], accessory: str = "hat") -> None:
    """`accessory` presence per image; PSNR/SSIM outside its area versus the reference (first) column."""
    from toy.metrics import preservation
    from toy.presence import accessory_present

    ref = columns[0].images
    for col in columns:
        col.present = [bool(v) for v in accessory_present(col.images * 2 - 1, accessory)]
        if col is columns[0]:
            continue
        pres = preservation(col.images, ref, accessory=accessory)
        col.psnr = [_cap(v) for v in pres["psnr"].tolist()]
        col.ssim = [float(v) for v in pres["ssim"].tolist()]


def _text_size(draw: Any, text: str, font: Any) -> tuple[int, int]:
    left, top, right, bottom = draw.textbbox((0, 0), text, font=font)
    return right - left, bottom - top


def render_grid(columns: list[Column], seeds: list[int], scale: int, title: str, accessory: str = "hat") -> Any:
    """A labelled PIL image: a title line, a header per column (label, accessory count), one row per seed."""
    from PIL import Image, ImageDraw, ImageFont

    font = ImageFont.load_default()
    probe = ImageDraw.Draw(Image.new("RGB", (1, 1)))
    n = len(seeds)
    _, h, w = columns[0].images.shape[1:]
    tile_w, tile_h = w * scale, h * scale
    gap, pad, line_h = 4, 6, _text_size(probe, "Ag", font)[1] + 4
    headers = []
    for col in columns:
        lines = [col.label, f"{accessory} {sum(col.present)}/{n}"]
        if col.ssim:
            lines.append(f"SSIM {sum(col.ssim) / len(col.ssim):.3f}")
        headers.append(lines)
    col_w = max([tile_w] + [_text_size(probe, t, font)[0] + 2 * pad for lines in headers for t in lines])
    label_w = max(_text_size(probe, f"seed {s}", font)[0] for s in seeds) + 2 * pad
    title_h = line_h + pad
    header_h = line_h * max(len(x) for x in headers) + pad
    grid_w = label_w + len(columns) * (col_w + gap)
    width = max(grid_w, _text_size(probe, title, font)[0] + 2 * pad)
    height = title_h + header_h + n * (tile_h + gap) + pad
    canvas = Image.new("RGB", (width, height), (255, 255, 255))
    draw = ImageDraw.Draw(canvas)
    draw.text((pad, pad // 2), title, fill=(0, 0, 0), font=font)
    y0 = title_h + header_h
    for c, (col, lines) in enumerate(zip(columns, headers, strict=True)):
        x = label_w + c * (col_w + gap)
        for i, text in enumerate(lines):
            tw = _text_size(probe, text, font)[0]
            draw.text((x + (col_w - tw) // 2, title_h + i * line_h), text, fill=(0, 0, 0), font=font)
        for r in range(n):
            arr = (col.images[r].clamp(0, 1) * 255).round().byte().permute(1, 2, 0).numpy()
            tile = Image.fromarray(arr, "RGB").resize((tile_w, tile_h), Image.NEAREST)
            canvas.paste(tile, (x + (col_w - tile_w) // 2, y0 + r * (tile_h + gap)))
    for r, s in enumerate(seeds):
        text = f"seed {s}"
        th = _text_size(probe, text, font)[1]
        draw.text((pad, y0 + r * (tile_h + gap) + (tile_h - th) // 2), text, fill=(0, 0, 0), font=font)
    return canvas


def summary(columns: list[Column], seeds: list[int], args: argparse.Namespace, seconds: float) -> dict[str, Any]:
    """The JSON document written next to the grid."""
    cols = []
    for col in columns:
        entry: dict[str, Any] = {
            "label": col.label,
            "negative_prompt": col.negative_prompt,
            "extension": {"enabled": col.enabled, "delay": col.delay if col.enabled else None},
            "accessory_rate": sum(col.present) / len(col.present),
            "accessory_present": dict(zip([str(s) for s in seeds], col.present, strict=True)),
            "infotext": col.infotext,
        }
        if col.ssim:
            entry["preservation_vs_no_negative"] = {
                "psnr_mean": sum(col.psnr) / len(col.psnr),
                "ssim_mean": sum(col.ssim) / len(col.ssim),
                "psnr": dict(zip([str(s) for s in seeds], col.psnr, strict=True)),
                "ssim": dict(zip([str(s) for s in seeds], col.ssim, strict=True)),
            }
        else:
            entry["preservation_vs_no_negative"] = None
        cols.append(entry)
    return {
        "config": {
            "prompt": args.prompt,
            "negative_prompt": args.negative,
            "steps": args.steps,
            "cfg_scale": args.cfg,
            "sampler": args.sampler,
            "scheduler": args.scheduler,
            "seeds": seeds,
            "delays": args.delays,
            "size": "32x32",
            "model": "bundled toy model (toy/weights)"
            if args.model == "eps"
            else "bundled rectified-flow toy model (toy/weights_flow)",
        },
        "metrics": {
            "accessory": f"toy.presence.accessory_present(images, {args.negative!r})",
            "preservation": f"PSNR (dB, capped at {PSNR_CAP_DB:g}) and SSIM vs the 'no negative' image of the same "
            "seed, outside the union of both images' accessory regions dilated by 2 px",
        },
        "columns": cols,
        "seconds": round(seconds, 2),
    }


def build_parser() -> argparse.ArgumentParser:
    """Command-line options."""
    ap = argparse.ArgumentParser(
        prog="python -m toy.demo",
        description="Render a grid on the bundled toy model: no negative prompt, the negative prompt from step 0, "
        "and the negative prompt delayed by N steps (through the WebUI stand-in and the real extension).",
    )
    ap.add_argument("--prompt", default=DEFAULT_PROMPT, help=f"positive prompt (default: {DEFAULT_PROMPT!r})")
    ap.add_argument(
        "--negative",
        default=DEFAULT_NEGATIVE,
        help=f"negative prompt: hat, glasses or stripes (default {DEFAULT_NEGATIVE!r})",
    )
    ap.add_argument("--steps", type=int, default=20, help="sampling steps (default 20)")
    ap.add_argument(
        "--seeds",
        type=lambda t: parse_int_list(t, "seed"),
        default=parse_int_list(DEFAULT_SEEDS),
        help=f"rows: e.g. 1-6 or 1,2,3 (default {DEFAULT_SEEDS})",
    )
    ap.add_argument(
        "--model",
        choices=("eps", "flow"),  # toy.model.BUNDLED (imported late: torch loads only after the arguments are read)
        default="eps",
        help="eps: the bundled model (default); flow: its rectified-flow sibling, toy/weights_flow (use --cfg 5)",
    )
    ap.add_argument("--cfg", type=float, default=7.0, help="CFG scale (default 7)")
    ap.add_argument("--sampler", default="Euler", help="sampler name as in the WebUI (default Euler)")
    ap.add_argument("--scheduler", default="Automatic", help="schedule type (default Automatic)")
    ap.add_argument(
        "--delays",
        type=lambda t: parse_int_list(t, "delay"),
        default=parse_int_list(DEFAULT_DELAYS),
        help=f"delayed columns: steps before the negative prompt applies (default {DEFAULT_DELAYS})",
    )
    ap.add_argument("--out", default="out", help="output folder (default out/)")
    ap.add_argument(
        "--threads", type=int, default=0, help="torch CPU threads (default: torch's choice; 1 on a busy machine)"
    )
    ap.add_argument("--scale", type=int, default=4, help="nearest-neighbour upscale of the 32x32 tiles (default 4)")
    return ap


def _fail(message: str) -> int:
    print(f"error: {message}", file=sys.stderr)
    return 2


def main(argv: list[str] | None = None) -> int:
    """Run the demo; returns the exit code (2 for bad input)."""
    args = build_parser().parse_args(argv)
    if args.steps < 1:
        return _fail("--steps must be at least 1")
    if args.scale < 1:
        return _fail("--scale must be at least 1")
    if any(d < 0 for d in args.delays):
        return _fail("--delays must be >= 0")
    from toy.world import ACCESSORIES

    if args.negative not in ACCESSORIES:
        return _fail(f"negative prompt {args.negative!r}: the demo measures one accessory; use one of {ACCESSORIES}")
    _ensure_paths()
    import torch
    from tqdm import tqdm

    if args.threads > 0:
        torch.set_num_threads(args.threads)

    from toy.model import BUNDLED, ToyLDM

    model = ToyLDM.load(BUNDLED[args.model])
    for what, text in (("prompt", args.prompt), ("negative prompt", args.negative)):
        try:
            model.validate_prompt(text)
        except ValueError as exc:
            return _fail(f"{what}: {exc}")

    import harness
    from modules import sd_samplers, sd_schedulers

    if args.sampler not in sd_samplers.visible_sampler_names():
        return _fail(f"unknown sampler {args.sampler!r}; have: {', '.join(sd_samplers.visible_sampler_names())}")
    if args.scheduler not in [s.label for s in sd_schedulers.schedulers]:
        return _fail(
            f"unknown scheduler {args.scheduler!r}; have: {', '.join(s.label for s in sd_schedulers.schedulers)}"
        )
    started = time.perf_counter()
    harness.start(str(ROOT), model)
    ext_log = logging.getLogger("negative_prompt_delay")
    level = ext_log.level
    ext_log.setLevel(logging.WARNING)  # keep the progress bar readable (warnings still show)
    seeds = list(args.seeds)
    columns = make_columns(args.negative, list(args.delays))
    runs = len(consecutive_runs(seeds))
    try:
        with torch.inference_mode(), tqdm(total=len(columns) * runs, desc="demo", unit="generation") as bar:
            for col in columns:
                col.images, col.infotext = generate(harness, col, args, seeds, bar)
    finally:
        ext_log.setLevel(level)
    measure(columns, args.negative)
    title = f'"{args.prompt}"   negative: "{args.negative}"   {args.sampler}, {args.steps} steps, CFG {args.cfg:g}'
    if args.model == "flow":
        title += ", flow model"
    grid = render_grid(columns, seeds, args.scale, title, args.negative)
    seconds = time.perf_counter() - started

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    grid.save(out / "demo.png", optimize=True)
    doc = summary(columns, seeds, args, seconds)
    (out / "demo.json").write_text(json.dumps(doc, indent=2) + "\n")
    for entry in doc["columns"]:
        pres = entry["preservation_vs_no_negative"]
        extra = f"  PSNR {pres['psnr_mean']:6.2f}  SSIM {pres['ssim_mean']:.3f}" if pres else ""
        print(f"{entry['label']:<22} {args.negative} rate {entry['accessory_rate']:.2f}{extra}")
    print(f"wrote {out / 'demo.png'} and {out / 'demo.json'} ({seconds:.1f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
