"""How much the delay benchmark's verdict depends on the accessory detectors' thresholds.

    .venv/bin/python bench/detector_sensitivity.py [--delays 0,1,2,3,4,6] [--out bench/results]

The detectors (`toy/presence.py`) count an accessory when enough pixels pass a threshold: near-white for the hat,
near-black for the glasses, a row-to-row contrast for the stripes. The toy model often draws faint accessories, and
a later negative prompt may fade an accessory rather than remove it, so a strict threshold counts faded remains as
removed. This rescores the benchmark's Euler cases (per accessory 64 seeds, seed i with prompt i mod 8 of
`world.prompts_implying`, 20 steps, CFG 7) with the shipped threshold and looser ones: the accessory's rate without
the negative and, per delay, its rate with it and the benchmark's score ([no accessory] x SSIM outside it).

Images come from `toy.model._quick_sample` (Euler with the negative from a given step), not through the WebUI
stand-in; at the shipped thresholds the scores are compared with `bench_delay.json`'s Euler scores where that
file exists, and the largest difference is printed.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from toy import metrics, presence, world  # noqa: E402
from toy.model import ToyLDM, _quick_sample  # noqa: E402

# per accessory: the pixel test's thresholds, the shipped one first
THRESHOLDS = {
    "hat": (presence.WHITE_THRESHOLD, 0.65, 0.55),
    "glasses": (presence.DARK_THRESHOLD, 0.7, 0.6),
    "stripes": (presence.STRIPE_THRESHOLD, 0.045, 0.03),
}


def rescore(model: ToyLDM, accessory: str, delays: list[int], seeds: int, steps: int) -> dict:
    """Rates and scores of one accessory's cases at every threshold of `THRESHOLDS[accessory]`."""
    prompts = world.prompts_implying(accessory, 8, link=model.world_link)
    cases = [prompts[i % len(prompts)] for i in range(seeds)]
    with torch.inference_mode():
        plain = _quick_sample(model, cases, "", list(range(seeds)), steps, 7.0)
        runs = {k: _quick_sample(model, cases, accessory, list(range(seeds)), steps, 7.0, k) for k in delays}
    ssim = {k: metrics.preservation((x + 1) / 2, (plain + 1) / 2, accessory=accessory)["ssim"] for k, x in runs.items()}
    out = {}
    for th in THRESHOLDS[accessory]:
        row = {
            "rate_without_negative": round(float(presence.accessory_present(plain, accessory, th).float().mean()), 4)
        }
        for k, x in runs.items():
            now = presence.accessory_present(x, accessory, th)
            row[str(k)] = {
                "rate": round(float(now.float().mean()), 4),
                "score": round(float(metrics.case_score(now, ssim[k]).mean()), 4),
            }
        out[str(th)] = row
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--delays", default="0,1,2,3,4,6")
    ap.add_argument("--seeds", type=int, default=64)
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--threads", type=int, default=0)
    ap.add_argument("--out", type=Path, default=ROOT / "bench" / "out")
    args = ap.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    delays = [int(d) for d in args.delays.split(",") if d.strip()]
    model = ToyLDM.load()
    t0 = time.perf_counter()
    result = {acc: rescore(model, acc, delays, args.seeds, args.steps) for acc in world.ACCESSORIES}
    for acc, by_th in result.items():
        for th, row in by_th.items():
            cells = " | ".join(f"d{k} {row[str(k)]['rate']:.2f} / {row[str(k)]['score']:.3f}" for k in delays)
            print(f"{acc:8s} threshold {th:>6s}: unasked {row['rate_without_negative']:.2f} | {cells}")
    bench = ROOT / "bench" / "results" / "bench_delay.json"
    if bench.exists():
        ref = json.loads(bench.read_text())["accessories"]
        diffs = [
            abs(result[acc][str(THRESHOLDS[acc][0])][str(k)]["score"] - ref[acc]["Euler"]["delays"][k]["score"])
            for acc in world.ACCESSORIES
            if acc in ref
            for k in delays
        ]
        print(f"shipped thresholds vs {bench.relative_to(ROOT)} (Euler): largest score difference {max(diffs):.4f}")
    args.out.mkdir(parents=True, exist_ok=True)
    doc = {"config": {"delays": delays, "seeds": args.seeds, "steps": args.steps, "cfg": 7.0}, "accessories": result}
    doc["seconds"] = round(time.perf_counter() - t0, 1)
    (args.out / "detector_sensitivity.json").write_text(json.dumps(doc, indent=1) + "\n")
    print(f"wrote {args.out / 'detector_sensitivity.json'} ({doc['seconds']} s)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
