"""The analysis sheet on the bundled model: when "glasses" starts to act on "red triangle on blue background".

    python -m toy.sheet            # or: bash dev sheet  -> out/sheet.png, out/sheet.json
    python -m toy.sheet --copy-to docs/sheet.png   # the README's copy, palette-quantised

Runs txt2img in the WebUI stand-in with the real extension (Euler, 20 steps, CFG 7: the benchmark's settings) at the
benchmark's best fixed delay for glasses (5, `bench/results/table.md`) with "Show when the negative prompt acts"
ticked, on the first seed of 1-8 whose picture without the negative prompt wears glasses (`toy.presence`). Writes
the sheet the extension appended to the gallery, and in the JSON the detector's cosine per step, the steps at or
above the auto threshold of the default sensitivity, and where the change the negative would make is largest in the
glasses' region (the heat map's reading, measured against the region the toy world draws them in).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PROMPT, NEGATIVE, BEST_DELAY = "red triangle on blue background", "glasses", 5
TITLE = "Negative Prompt Delay"


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", type=Path, default=ROOT / "out")
    ap.add_argument("--copy-to", type=Path, help="also copy the sheet here (docs/sheet.png for the README)")
    args = ap.parse_args(argv)
    for path in (str(ROOT / "webui_standin"), str(ROOT)):
        if path not in sys.path:
            sys.path.insert(0, path)
    import harness
    import torch

    from lib_negative_delay import analysis
    from lib_negative_delay.detector import threshold_for
    from lib_negative_delay.settings import DelaySettings
    from toy import presence
    from toy.model import ToyLDM

    torch.set_num_threads(1)
    model = ToyLDM.load()
    harness.start(str(ROOT), model)
    base = dict(prompt=PROMPT, steps=20, sampler_name="Euler", width=32, height=32, cfg_scale=7.0, batch_size=1)

    def latent(image: torch.Tensor) -> torch.Tensor:  # a gallery image [3, H, W] in [0, 1] as the toy's [-1, 1]
        return image[None] * 2 - 1

    plain = {s: latent(harness.txt2img(**base, seed=s, negative_prompt="").images[0]) for s in range(1, 9)}
    seed = next(s for s, image in plain.items() if presence.accessory_present(image, NEGATIVE)[0])
    records: list = []
    draw = analysis.render

    def keep(record, *rest):  # noqa: ANN001, ANN202
        records.append(record)
        return draw(record, *rest)

    analysis.render = keep
    try:
        settings = [True, BEST_DELAY, False, DelaySettings.sensitivity, 4, 7, "steps", True]
        res = harness.txt2img(**base, seed=seed, negative_prompt=NEGATIVE, alwayson_scripts={TITLE: {"args": settings}})
    finally:
        analysis.render = draw
    sheet = res.images[-1]
    args.out.mkdir(parents=True, exist_ok=True)
    sheet.save(args.out / "sheet.png")
    record = records[0]
    threshold = threshold_for(DelaySettings.sensitivity)
    region = presence.accessory_region(plain[seed], NEGATIVE)[0]  # where the glasses are without the negative
    inside = [
        round(float(c.change[region].mean() / c.change.mean().clamp_min(1e-12)), 2) if region.any() else None
        for c in record.columns
    ]
    report = {
        "prompt": PROMPT,
        "negative": NEGATIVE,
        "seed": seed,
        "delay": BEST_DELAY,
        "switch_step": record.switch_step(),
        "threshold": round(threshold, 3),
        "cosine": [round(c.cosine, 3) for c in record.columns],
        "steps_at_or_above_threshold": [c.step for c in record.columns if c.cosine >= threshold],
        "change_in_glasses_region_vs_mean": inside,
        "glasses_with_negative": bool(presence.accessory_present(latent(res.images[0]), NEGATIVE)[0]),
    }
    (args.out / "sheet.json").write_text(json.dumps(report, indent=1) + "\n")
    if args.copy_to:  # for the repository: a palette PNG (a third of the size; the sheet has few colours)
        sheet.convert("RGB").quantize(colors=192).save(args.copy_to, optimize=True)
    print(json.dumps(report))
    return report


if __name__ == "__main__":
    main()
