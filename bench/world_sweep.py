"""Train several toy-world variants at once on one GPU and screen each for the delay's payoff (Euler only).

The full benchmark (`bench/bench_delay.py`) runs the extension inside the WebUI stand-in on the CPU and takes
minutes per model; this screen samples directly with `toy.model._quick_sample` (the same Euler sampler with a
delayed negative that the tests use), on whatever device the model is on, so a sweep of worlds can be ranked in
one short GPU session. Its cases are the benchmark's (per accessory: `world.prompts_implying(accessory, 8, 1234)`,
seeds 0..N-1 paired with prompt i mod 8) and so are its per-case outcomes (`bench_delay.case_outcomes`, `pool`);
the winner still has to go through the full benchmark before it is shipped.

    python bench/world_sweep.py --out out/sweep --iters 4500 --deadline 420 \\
        --variant ctrl: --variant a6s02:--accessory-prob=0.6,--stray-prob=0.02
    python bench/world_sweep.py --screen-only toy/weights          # screen one model, print its JSON

Each variant is `name:flag,flag,...` (flags of `toy.train`, `,`-separated, `=`-joined); every variant also gets
the shipped recipe's `--batch 96 --c1 48 --c2 96 --patch 2 --seed 0` unless it overrides them. Trainings run as
concurrent processes; a variant not finished by `--deadline` seconds is stopped and reported as such.

Measured on an H200 (16 cores; the model is launch-bound, so the processes share the GPU well but not for free):
seven concurrent trainings ran at 0.093 s/it each and four at about 0.075 s/it, against 0.40 s/it for one on
this project's 2-core CPU. Its Euler numbers on the previously shipped weights equal `bench/bench_delay.py`'s to
the last printed digit (hat 0.659, glasses 0.847 / 0.870 at delays 0 / 3, pooled 0.777 at delay 0).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench_delay import aggregate, case_outcomes, pool  # noqa: E402

from toy import world  # noqa: E402
from toy.model import ToyLDM, _quick_sample  # noqa: E402

RECIPE = {"--batch": "96", "--c1": "48", "--c2": "96", "--patch": "2", "--seed": "0"}
SCREEN_DELAYS = tuple(range(9))  # contiguous from 0, as bench_delay.case_outcomes reads them


@torch.no_grad()
def screen(model: ToyLDM, seeds: int = 64, prompts: int = 8, steps: int = 20, cfg: float = 7.0) -> dict:
    """Per accessory and pooled: per delay rate / removal / SSIM outside / score, and the best delay."""
    per: dict[str, dict] = {}
    outcomes = []
    case_seeds = list(range(seeds))
    for acc in world.ACCESSORIES:
        plist = world.prompts_implying(acc, prompts, 1234, link=model.world_link)
        case_prompts = [plist[i % len(plist)] for i in range(seeds)]
        run = (model, case_prompts, acc, case_seeds, steps, cfg)
        delayed = {d: _unit(_quick_sample(*run, negative_start_step=d)) for d in SCREEN_DELAYS}
        ref = _unit(_quick_sample(*run, negative_start_step=steps))
        outcomes.append(case_outcomes(ref, delayed, acc, SCREEN_DELAYS[-1]))
        rows = _rows(outcomes[-1])
        rate = round(float(outcomes[-1]["present_ref"].float().mean()), 3)
        per[acc] = {"rate_without": rate, "delays": rows, **_best(rows)}
    pooled = _rows(pool(outcomes))
    bests = [per[a]["best_delay"] for a in world.ACCESSORIES]
    return {"accessories": per, "pooled": {"delays": pooled, **_best(pooled)}, "spread": max(bests) - min(bests)}


def _unit(images: torch.Tensor) -> torch.Tensor:
    """Images from [-1, 1] on any device to [0, 1] on the CPU (what `bench_delay.case_outcomes` takes)."""
    return (images.cpu() + 1) / 2


def _rows(cases: dict) -> dict[int, dict]:
    """The screen's per-delay summary: `bench_delay.aggregate`'s rows (one accessory, or several pooled), rounded."""
    digits = {"rate": 3, "removal": 3, "ssim": 4, "score": 4}
    rows = aggregate(cases, [], [])["delays"]
    return {r["delay"]: {k: round(r[k], n) for k, n in digits.items()} for r in rows}


def _best(rows: dict[int, dict]) -> dict:
    best = max(rows, key=lambda d: (rows[d]["score"], -d))
    return {"best_delay": best, "best_ratio": round(rows[best]["score"] / max(rows[0]["score"], 1e-9), 4)}


def _variant_argv(spec: str, out: Path, iters: int) -> tuple[str, list[str]]:
    name, _, flags = spec.partition(":")
    given = dict(f.split("=", 1) if "=" in f else (f, "") for f in flags.split(",") if f)
    merged = {**RECIPE, "--iters": str(iters), **given}
    argv = ["--out", str(out / name), "--checkpoint-minutes", "0", "--log-every", "500", "--threads", "2"]
    for k, v in merged.items():
        argv += [k] + ([v] if v else [])
    return name, argv


def sweep(args: argparse.Namespace) -> dict:
    """Start every variant's training, screen each as it finishes, stop the rest at the deadline."""
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    started = time.time()
    procs = {}
    for spec in args.variant:
        name, argv = _variant_argv(spec, out, args.iters)
        log = open(out / f"{name}.log", "w")  # noqa: SIM115 - closed when the process ends
        cmd = [sys.executable, "-m", "toy.train", *argv]
        procs[name] = (subprocess.Popen(cmd, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT), log, argv)
        print(f"started {name}: {' '.join(argv)}", flush=True)
    results: dict[str, dict] = {}
    device = "cuda" if torch.cuda.is_available() else "cpu"
    while procs:
        for name in list(procs):
            proc, log, argv = procs[name]
            elapsed = time.time() - started
            if proc.poll() is None and elapsed < args.deadline:
                continue
            if proc.poll() is None:
                proc.kill()
                proc.wait()
            log.close()
            del procs[name]
            tail = (out / f"{name}.log").read_text().splitlines()[-3:]
            entry: dict = {"argv": argv, "returncode": proc.returncode, "log_tail": tail}
            if proc.returncode == 0:
                t0 = time.time()
                entry.update(screen(ToyLDM.load(out / name, device=device), seeds=args.seeds))
                entry["screen_seconds"] = round(time.time() - t0, 1)
            results[name] = entry
            summary = entry.get("pooled", {})
            print(
                f"{elapsed:6.0f}s {name}: rc={proc.returncode} pooled best {summary.get('best_delay')} "
                f"({summary.get('best_ratio')}x) per accessory "
                f"{[entry.get('accessories', {}).get(a, {}).get('best_delay') for a in world.ACCESSORIES]} "
                f"{[entry.get('accessories', {}).get(a, {}).get('best_ratio') for a in world.ACCESSORIES]}",
                flush=True,
            )
        time.sleep(2)
    return results


def main(argv: list[str] | None = None) -> int:
    """CLI entry point."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", default=str(ROOT / "out" / "sweep"))
    ap.add_argument("--variant", action="append", default=[], help="name:flag,flag=value,... (repeatable)")
    ap.add_argument("--iters", type=int, default=4500)
    ap.add_argument("--deadline", type=float, default=420.0, help="seconds after which unfinished trainings stop")
    ap.add_argument("--seeds", type=int, default=64, help="cases per accessory in the screen")
    ap.add_argument("--screen-only", metavar="WEIGHTS", help="screen one trained model and print its JSON")
    args = ap.parse_args(argv)
    if args.screen_only:
        print(json.dumps(screen(ToyLDM.load(args.screen_only), seeds=args.seeds), indent=1))
        return 0
    results = sweep(args)
    (Path(args.out) / "sweep.json").write_text(json.dumps(results, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
