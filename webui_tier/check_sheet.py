"""The analysis sheet (issue 28) in a running WebUI, over its HTTP API; optionally a screenshot of the gallery.

    .venv/bin/python webui_tier/check_sheet.py --url http://127.0.0.1:7861 --outputs $FIXTURE/webui/outputs \
        [--checkpoint random-sdxl] [--neo-model chroma] [--set scheduler=Simple] \
        [--screenshot docs/sheet_gallery.png --python $FIXTURE/venv/bin/python]

Checks, for batch 1 and 2 (fixed delay 3 of 8 steps, and auto-detect for batch 2):
- the response holds the images, then one sheet per image (``images``), each with its gallery text in ``infotexts``;
- the images are pixel for pixel those of the same request with the analysis off;
- each sheet's infotext is its image's followed by ``Negative delay sheet: "image N: negative prompt from step K"``,
  K the step the image's infotext records (``Negative delay`` / ``Negative delay steps``);
- with *Always save all generated image grids* on, nothing is saved unless this extension's Settings option is on,
  and then one file per sheet in the grids folder (``--outputs``/txt2img-grids; Classic and Neo: their ``output``
  folder, JPEG by their default grid format).
Prints one JSON report; exits 1 when a check fails. Settings it changes are put back.
"""  # noqa: E501 (the command line above)

from __future__ import annotations

import argparse
import base64
import io
import json
import re
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

TITLE = "Negative Prompt Delay"
SAVE_KEY = "negative_delay_save_sheets"


def call(url: str, path: str, body: dict | None = None) -> dict:
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url + path, data=data, headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=1800) as response:
        return json.loads(response.read())


def pixels(b64: str) -> tuple:
    from PIL import Image

    image = Image.open(io.BytesIO(base64.b64decode(b64.split(",", 1)[-1])))
    return image.size, image.convert("RGB").tobytes()


EXTRA: dict = {}  # --set and --neo-model fields, in every request


def request(batch: int, analysis: bool, auto: bool, checkpoint: str | None) -> dict:
    args = [True, 3, auto, 1.0 if auto else 0.3, 2, 5, "steps", analysis]
    body = {
        "prompt": "a cat",
        "negative_prompt": "glasses, hat",
        "steps": 8,
        "width": 64,
        "height": 64,
        "seed": 11,
        "cfg_scale": 7,
        "sampler_name": "Euler",
        "batch_size": batch,
        "alwayson_scripts": {TITLE: {"args": args}},
    }
    if checkpoint:
        body["override_settings"] = {"sd_model_checkpoint": checkpoint}
    body.update(EXTRA)
    return body


def switch_steps(infotext: str, batch: int) -> list[int]:
    found = re.search(r"Negative delay steps: ([\d ]+)", infotext)
    if found:
        return [int(x) for x in found.group(1).split()]
    return [int(re.search(r"Negative delay: (\d+)", infotext).group(1))] * batch


def run_case(url: str, batch: int, auto: bool, checkpoint: str | None, keep: Path | None = None) -> dict:
    t0 = time.time()
    off = call(url, "/sdapi/v1/txt2img", request(batch, False, auto, checkpoint))
    t1 = time.time()
    on = call(url, "/sdapi/v1/txt2img", request(batch, True, auto, checkpoint))
    seconds = round(time.time() - t1, 1)
    if keep is not None:
        keep.mkdir(parents=True, exist_ok=True)
        for n, b64 in enumerate(on["images"][batch:], start=1):
            name = f"sheet-batch{batch}{'-auto' if auto else ''}-{n}.png"
            (keep / name).write_bytes(base64.b64decode(b64.split(",", 1)[-1]))
    info = json.loads(on["info"])
    texts = info["infotexts"]
    steps = switch_steps(texts[0], batch)
    sheet_texts = texts[batch:]
    # each sheet's infotext: its image's, then the sheet's key with the image's switch step
    expected = [f'{texts[n]}, Negative delay sheet: "image {n + 1}: negative prompt from step {s}"' for n, s in
                enumerate(steps)]  # fmt: skip
    return {
        "batch": batch,
        "auto": auto,
        "seconds_without_sheet": round(t1 - t0, 1),
        "seconds_with_sheet": seconds,
        "images": len(off["images"]),
        "images_with_sheet": len(on["images"]),
        "switch_steps": steps,
        "sheet_texts": sheet_texts,
        "sheet_sizes": [pixels(b)[0] for b in on["images"][batch:]],
        "ok_count": len(on["images"]) == 2 * batch and len(off["images"]) == batch and len(texts) == 2 * batch,
        "ok_identical": all(map(lambda a, b: pixels(a) == pixels(b), off["images"][:batch], on["images"][:batch])),
        "ok_marker": sheet_texts == expected,
    }


def saving(url: str, outputs: Path, checkpoint: str | None) -> dict:
    grids = outputs / "txt2img-grids"
    before = call(url, "/sdapi/v1/options")
    result = {}
    try:
        for ours in (False, True):
            call(url, "/sdapi/v1/options", {"grid_save": True, SAVE_KEY: ours})
            seen = set(grids.rglob("negative_delay_sheet*.*")) if grids.exists() else set()
            body = request(2, True, False, checkpoint)
            body["save_images"] = True
            call(url, "/sdapi/v1/txt2img", body)
            # only the sheets: the WebUI saves its own grid of a batch beside them
            new = (set(grids.rglob("negative_delay_sheet*.*")) if grids.exists() else set()) - seen
            result[f"saved_with_option_{'on' if ours else 'off'}"] = sorted(str(p.relative_to(outputs)) for p in new)
    finally:
        call(url, "/sdapi/v1/options", {k: before.get(k) for k in ("grid_save", SAVE_KEY) if k in before})
    result["ok_saving"] = not result["saved_with_option_off"] and len(result["saved_with_option_on"]) == 2
    return result


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--url", default="http://127.0.0.1:7861")
    ap.add_argument("--outputs", type=Path, required=True, help="the WebUI's outputs folder")
    ap.add_argument("--checkpoint", help="sd_model_checkpoint for every request (default: the loaded one)")
    ap.add_argument("--screenshot", type=Path, help="also screenshot the txt2img gallery with a sheet here")
    ap.add_argument("--python", default=sys.executable, help="a Python with playwright, for --screenshot")
    ap.add_argument("--neo-model", help="Forge Neo: select this random engine (chroma, flux, ...), use its preset")
    ap.add_argument("--keep-sheets", type=Path, help="write the sheets of the responses to this folder")
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="a request field (JSON value)")
    args = ap.parse_args()
    if args.neo_model:
        sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
        from webui_tier.scenarios import NEO_SETTINGS
        from webui_tier.tools.make_random_neo_models import api_selection

        call(args.url, "/sdapi/v1/options", api_selection(args.neo_model))
        EXTRA.update(NEO_SETTINGS[args.neo_model], scheduler="Simple")
    for item in args.set:
        key, _, value = item.partition("=")
        try:
            EXTRA[key] = json.loads(value)
        except json.JSONDecodeError:
            EXTRA[key] = value
    runs = ((1, False), (2, False), (2, True))
    cases = [run_case(args.url, b, a, args.checkpoint, args.keep_sheets) for b, a in runs]
    report = {"extra": EXTRA, "cases": cases}
    report.update(saving(args.url, args.outputs, args.checkpoint))
    if args.screenshot:
        tool = Path(__file__).resolve().parent / "tools" / "screenshot_gallery.py"
        shot = subprocess.run([args.python, str(tool), "--url", args.url, "--out", str(args.screenshot)])
        report["screenshot_rc"] = shot.returncode
    checks = [v for c in report["cases"] for k, v in c.items() if k.startswith("ok_")] + [report["ok_saving"]]
    report["all_ok"] = all(checks)
    print(json.dumps(report, indent=1))
    return 0 if report["all_ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
