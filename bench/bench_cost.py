"""Wall time of auto mode and of the analysis sheet against the extension off, and auto's switch steps.

    .venv/bin/python bench/bench_cost.py [--runs 60] [--out bench/results/bench_cost.json]
    .venv/bin/python bench/bench_cost.py --steps-only --check bench/results/auto_switch_steps.json

Timing (issue 28): on the bundled model (Euler, 20 steps, 32x32, "red triangle on blue background", negative
"glasses"), for batch 1 and batch 4, the modes off / fixed delay 3 / auto (the defaults) / auto measuring in a call
of its own (as before 0.5.0) / analysis sheet / auto with the sheet run
interleaved in one process, `--runs` rounds after one warm-up round. Each mode's ratio to off is the median of the
per-round ratios (paired: a round's runs are consecutive, so a slow spell of a busy machine hits all of them); the
model rows (a forward pre-hook on the UNet) are counted beside.

Switch steps: auto mode with its defaults over the auto benchmark's cases (each accessory as the negative, 8 prompts
that imply it, seeds 0-15 in batches of 4, Euler 20 steps, CFG 7) — the steps the infotext records per image.
`--record` writes them; `--check` compares a run with a recorded file, so a change to how auto mode measures can be
shown not to move any image's switch step.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "webui_standin")]

from lib_negative_delay import TITLE  # noqa: E402
from lib_negative_delay.settings import DelaySettings  # noqa: E402

PROMPT, NEGATIVE = "red triangle on blue background", "glasses"
STEPS_KEY = "Negative delay steps:"


def _auto_args() -> list:
    d = DelaySettings()
    return [True, 3, True, d.sensitivity, d.auto_min, d.auto_max]


def modes() -> dict[str, list]:
    """The timed settings of the panel (positional script arguments). ``auto_own_call``: auto mode measuring in a
    call of its own after the WebUI's, as before 0.5.0 (the joined call switched off for that mode)."""
    found = {"off": [False, 0], "fixed_3": [True, 3], "auto": _auto_args(), "auto_own_call": _auto_args()}
    from lib_negative_delay.webui import ui

    if hasattr(ui, "ANALYSIS_ARG"):  # the analysis sheet with the extension otherwise at its fixed delay
        found["analysis"] = [True, 3, False, 0.3, 4, 7, "steps", True]
        found["auto_analysis"] = [*_auto_args(), "steps", True]
    return found


def _start():
    import harness

    from toy.model import ToyLDM

    model = ToyLDM.load()
    harness.start(str(ROOT), model)
    rows = [0]
    model.model.register_forward_pre_hook(
        lambda m, args, kwargs: rows.__setitem__(0, rows[0] + args[0].shape[0]), with_kwargs=True
    )
    return harness, rows


def measure(runs: int, batches: list[int]) -> dict:
    """Paired per-round ratios of every mode to off, per batch size."""
    from lib_negative_delay.webui import probe

    harness, rows = _start()
    out = {}
    settings = modes()
    lend = probe._lend_fold
    for batch in batches:
        base = dict(
            prompt=PROMPT, negative_prompt=NEGATIVE, steps=20, sampler_name="Euler", width=32, height=32,
            batch_size=batch, seed=77, cfg_scale=7.0,
        )  # fmt: skip
        times: dict[str, list[float]] = {k: [] for k in settings}
        counted: dict[str, int] = {}
        for r in range(runs + 1):
            for name, args in settings.items():
                rows[0] = 0
                probe._lend_fold = (lambda found: None) if name == "auto_own_call" else lend
                t0 = time.perf_counter()
                harness.txt2img(**base, alwayson_scripts={TITLE: {"args": args}})
                if r:  # round 0 warms up
                    times[name].append(time.perf_counter() - t0)
                counted[name] = rows[0]
        ratios = {
            k: round(statistics.median(a / b for a, b in zip(v, times["off"], strict=True)), 4)
            for k, v in times.items()
            if k != "off"
        }
        out[f"batch_{batch}"] = {
            "median_seconds": {k: round(statistics.median(v), 4) for k, v in times.items()},
            "ratio_to_off": ratios,
            "model_rows": counted,
        }
        print(f"batch {batch}: ratios to off {ratios}; rows {counted}", flush=True)
    probe._lend_fold = lend
    return {
        "setup": f"bundled model, Euler 20 steps, 32x32, {runs} interleaved rounds after 1 warm-up, paired medians",
        "threads": torch.get_num_threads(),
        **out,
    }


def switch_steps(prompts: int = 8, seeds: int = 16, batch: int = 4) -> dict[str, int]:
    """Per case key ``negative|prompt|seed``: the switch step auto mode recorded for that image."""
    from toy.world import ACCESSORIES, prompts_implying

    harness, _ = _start()
    found: dict[str, int] = {}
    for negative in ACCESSORIES:
        for prompt in prompts_implying(negative, prompts):
            for seed in range(0, seeds, batch):
                processed = harness.txt2img(
                    prompt=prompt, negative_prompt=negative, steps=20, sampler_name="Euler", width=32, height=32,
                    batch_size=batch, seed=seed, cfg_scale=7.0, alwayson_scripts={TITLE: {"args": _auto_args()}},
                )  # fmt: skip
                info = processed.infotexts[0]
                steps = [int(x) for x in info.split(STEPS_KEY, 1)[1].split(",", 1)[0].strip().split()]
                for i, step in enumerate(steps):
                    found[f"{negative}|{prompt}|{seed + i}"] = step
    return found


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--runs", type=int, default=60)
    ap.add_argument("--batches", default="1,4")
    ap.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "bench_cost.json")
    ap.add_argument("--steps-only", action="store_true", help="only the switch steps")
    ap.add_argument("--record", type=Path, help="write the switch steps to this file")
    ap.add_argument("--check", type=Path, help="compare the switch steps with this recorded file")
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    report: dict = {}
    if not args.steps_only:
        report["timing"] = measure(args.runs, [int(b) for b in args.batches.split(",")])
    if args.record or args.check or args.steps_only:
        steps = switch_steps()
        if args.record:
            args.record.write_text(json.dumps(steps, indent=0, sort_keys=True) + "\n")
        if args.check:
            recorded = json.loads(args.check.read_text())
            moved = {k: (recorded.get(k), v) for k, v in steps.items() if recorded.get(k) != v}
            report["switch_steps"] = {
                "cases": len(steps),
                "moved": len(moved),
                "examples": dict(list(moved.items())[:5]),
            }
            print(f"switch steps: {len(moved)} of {len(steps)} cases moved", flush=True)
    if report.get("timing"):
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(report, indent=1) + "\n")
    print(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
