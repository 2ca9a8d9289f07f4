"""Step-count study (issue 21): does the best negative-prompt delay carry over as a number of steps or as a share?

    python bench/bench_steps.py --quick                      # 16 seeds, 2 prompts per accessory (21 min here)
    python bench/bench_steps.py --seeds 20 --out bench/results  # the committed run (2 shared CPU cores, 1 thread)
    python bench/bench_steps.py --seeds 64 --steps-list 10,20,30,50 --samplers "Euler,DPM++ 2M"  # bench_delay's cases

The cases are the delay benchmark's (`bench/bench_delay.py`: per accessory seeds 0..N-1, seed i with prompt i mod 8
of the prompts implying it, the accessory as the negative prompt, CFG 7, 32x32, through the WebUI stand-in with the
real extension script), run at several numbers of sampling steps S (default 10, 20, 30, 50) with Euler and DPM++ 2M.
The generation (`bench_delay.generate`), the cases (`make_cases`), the UNet memo (`UNetMeter`) and the scoring
(`case_outcomes`, `aggregate`, `pool`: score = [no accessory] x SSIM outside it, per case) are bench_delay's.

Per S only the delays 0..ceil(max_share * S / 100) are run (default 60 %: the benchmark's scores fall after 30-40 %
of the schedule), plus the ones the carries below need; a best delay at the top of that range is flagged.
S = 20 (`--reference-steps`) runs first: its best fixed delay d20 (pooled over the accessories, and per accessory)
is carried to every other S in two ways and scored relative to S's own best:

- step carry: the same number of steps, d20 (capped at S: a delay of S or more never applies the negative);
- percent carry: the share p = 100 * d20 / 20, resolved at S as the extension resolves "p % of Sampling steps",
  `lib_negative_delay.settings.Delay(p, percent=True).steps(S)` = ceil(p * S / 100).

The percent carry is also generated through the extension itself with the delay written "p%" and must give the
step run's images bit for bit (`checks`). At the reference S with the full case set the pooled per-delay scores are
compared with `bench/results/bench_delay.json` (`comparison_with_bench_delay`); with fewer cases,
`--record-comparison` stores the same comparison made between a `--quick` run of both scripts.

Writes <out>/bench_steps.json and <out>/bench_steps.png (x = share of the schedule, y = pooled score).
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path
from typing import Any

import torch

ROOT = Path(__file__).resolve().parents[1]
for _p in (str(ROOT / "bench"), str(ROOT / "webui_standin"), str(ROOT)):
    if _p not in sys.path:
        sys.path.insert(0, _p)

from bench_delay import (  # noqa: E402
    UNetMeter,
    _clean,
    add_case_options,
    aggregate,
    case_config,
    case_outcomes,
    generate,
    make_cases,
    pool,
    start_stand_in,
)

from lib_negative_delay.settings import Delay  # noqa: E402
from toy import metrics  # noqa: E402

BENCH_DELAY_JSON = ROOT / "bench" / "results" / "bench_delay.json"
ROW_KEYS = ("score", "score_sem", "removal", "rate", "ssim")  # per-delay fields kept in bench_steps.json
CHECK_SHARE = 25.0  # the share generated through the extension at the reference S, before its best is known


def grid(steps: int, max_share: float) -> list[int]:
    """The delays run at every S: 0..ceil(max_share % of steps), never past steps."""
    return list(range(min(steps, math.ceil(max_share * steps / 100)) + 1))


def step_carry(chosen: int, steps: int) -> int:
    """The delay chosen at the reference step count, kept as a number of steps (a delay >= steps never applies)."""
    return min(chosen, steps)


def share_of(chosen: int, reference_steps: int) -> float:
    """The delay chosen at the reference step count as a share of that schedule in percent."""
    return 100.0 * chosen / reference_steps


def percent_carry(chosen: int, reference_steps: int, steps: int) -> int:
    """The chosen delay kept as a share: the extension's own resolution of that share at `steps`."""
    return Delay(share_of(chosen, reference_steps), percent=True).steps(steps)


def best_of(scores: dict[int, float]) -> int:
    """The delay with the highest score, the earliest on a tie (as `bench_delay.aggregate` picks it)."""
    return max(sorted(scores), key=lambda d: scores[d])


def carries(scores: dict[int, float], steps: int, chosen: int, reference_steps: int) -> dict:
    """S's best delay and what the reference step count's choice `chosen` scores at S, carried as steps and as a
    share, each relative to S's best score (`scores`: per evaluated delay at S)."""
    best = best_of(scores)
    out: dict[str, Any] = {"best_delay": best, "best_share": 100.0 * best / steps, "best_score": scores[best]}
    for name, delay in (
        ("step_carry", step_carry(chosen, steps)),
        ("percent_carry", percent_carry(chosen, reference_steps, steps)),
    ):
        ratio = scores[delay] / scores[best] if scores[best] else math.nan
        out[name] = {"delay": delay, "share": 100.0 * delay / steps, "score": scores[delay], "ratio": ratio}
    return out


def needed_delays(steps: int, max_share: float, chosen: list[int], reference_steps: int) -> list[int]:
    """The grid plus every carried delay of the reference choices `chosen` (pooled and per accessory)."""
    extra = {step_carry(c, steps) for c in chosen} | {percent_carry(c, reference_steps, steps) for c in chosen}
    return sorted(set(grid(steps, max_share)) | extra)


def run_steps(
    harness: Any, meter: UNetMeter, args: argparse.Namespace, sampler: str, cases: dict, delays: list[int], pct: float
) -> dict:
    """All generations for one sampler at args.steps: per accessory and group the reference (no negative, stored in
    the memo), the disabled run (stored) and every delay of `delays`; then the percent carry written "pct%" through
    the extension, answered from the memo of its resolved step run when the inputs are the same. Checks: delay 0 =
    disabled, delay steps = reference, "pct%" = its resolved step delay, bit for bit."""
    resolved = Delay(pct, percent=True).steps(args.steps)
    per_neg: dict[str, dict] = {}
    checks: dict[str, dict[str, bool]] = {}
    for neg in args.negatives:
        got: dict[str, Any] = {"ref": [], "delayed": {d: [] for d in delays}}
        check = {"delay0_equals_disabled": True, f"percent_{pct:g}_equals_delay_{resolved}": True}
        if args.steps in delays:
            check["delay_steps_equals_no_negative"] = True
        for group in cases[neg][1]:
            prompts, seed = [p for p, _ in group], group[0][1]
            meter.memo.clear()
            meter.memo_on = not args.no_memo
            meter.store = True
            ref = generate(harness, prompts, "", seed, args, sampler, [False, 0])
            plain = generate(harness, prompts, neg, seed, args, sampler, [False, 0])
            meter.store = False
            for d in delays:
                meter.store = d == resolved
                got["delayed"][d].append(generate(harness, prompts, neg, seed, args, sampler, [True, d]))
            meter.store = False
            by_share = generate(harness, prompts, neg, seed, args, sampler, [True, f"{pct:g}%"])
            check["delay0_equals_disabled"] &= bool(torch.equal(got["delayed"][0][-1], plain))
            check[f"percent_{pct:g}_equals_delay_{resolved}"] &= bool(
                torch.equal(got["delayed"][resolved][-1], by_share)
            )
            if args.steps in delays:
                check["delay_steps_equals_no_negative"] &= bool(torch.equal(got["delayed"][args.steps][-1], ref))
            got["ref"].append(ref)
            meter.memo.clear()
            meter.memo_on = False
        per_neg[neg] = {"ref": torch.cat(got["ref"]), "delayed": {d: torch.cat(x) for d, x in got["delayed"].items()}}
        checks[neg] = check
    return {"negatives": per_neg, "checks": checks}


def outcomes_at(ref: torch.Tensor, delayed: dict[int, torch.Tensor], accessory: str) -> dict:
    """`bench_delay.case_outcomes` over the evaluated delays only (its rows are indexed 0..len(delays)-1)."""
    delays = sorted(delayed)
    return case_outcomes(ref, {i: delayed[d] for i, d in enumerate(delays)}, accessory, len(delays) - 1)


def summarise(outcomes: dict, case_prompts: list[str], delays: list[int]) -> dict:
    """`bench_delay.aggregate` of outcomes over `delays`, its rows relabelled with the real delays; per-prompt rows
    left out."""
    agg = aggregate(outcomes, case_prompts, list(dict.fromkeys(case_prompts)))
    rows = []
    for d, row in zip(delays, agg["delays"], strict=True):
        row = {k: v for k, v in row.items() if k != "per_prompt"}
        row["delay"] = d
        rows.append(row)
    return {"cases": agg["cases"], "rate_without_negative": agg["rate_without_negative"], "delays": rows}


def scores_of(summary: dict) -> dict[int, float]:
    """Per evaluated delay: the mean score."""
    return {r["delay"]: r["score"] for r in summary["delays"]}


def compare_with_bench_delay(doc: dict, path: Path) -> dict:
    """Pooled per-delay scores at the reference S against bench_delay.json's (rounded as both files store them)."""
    if not path.exists():
        return {"comparable": False, "why": f"{path} missing"}
    ref = json.loads(path.read_text())
    c, rc = doc["config"], ref["config"]
    keys = ("seeds", "first_seed", "prompts", "prompt_set", "pairing", "negatives", "cfg_scale", "model")
    differ = [k for k in keys if c[k] != rc[k]]
    if c["reference_steps"] != rc["steps"]:
        differ.append("steps")
    if differ:
        return {"comparable": False, "why": f"config differs from {path.name} in {differ}"}
    out: dict[str, Any] = {"comparable": True}
    for sampler, res in doc["samplers"].items():
        theirs = {r["delay"]: r["score"] for r in ref["pooled"][sampler]["delays"]}
        ours = {int(d): r["score"] for d, r in res["steps"][str(c["reference_steps"])]["pooled"]["scores"].items()}
        diff = max(abs(round(ours[d], 5) - theirs[d]) for d in ours)
        out[sampler] = {"delays_compared": sorted(ours), "max_abs_diff": diff, "equal_to_rounding": diff <= 1e-5}
    return out


def record_comparison(steps_json: Path, delay_json: Path, out: Path) -> int:
    """Store in <out>/bench_steps.json the comparison of another (smaller) bench_steps run's reference S with a
    bench_delay run of the same cases; returns 1 unless they are comparable and equal to rounding."""
    small = json.loads(steps_json.read_text())
    got = compare_with_bench_delay(small, delay_json)
    c = small["config"]
    target = out / "bench_steps.json"
    doc = json.loads(target.read_text())
    doc["small_comparison_with_bench_delay"] = {
        "what": "the same comparison on a smaller case set, run by both scripts (bench_steps.py --quick and "
        "bench_delay.py --quick --threads 1), because this study used fewer cases than bench/results/bench_delay.json",
        "seeds": c["seeds"],
        "cases": c["cases"],
        "prompts_per_accessory": len(set(next(iter(c["prompts"].values())))),
        "model": c["model"],
        **got,
    }
    target.write_text(json.dumps(doc, indent=1) + "\n")
    print(json.dumps(doc["small_comparison_with_bench_delay"]))
    ok = got["comparable"] and all(v["equal_to_rounding"] for k, v in got.items() if isinstance(v, dict))
    return 0 if ok else 1


def plot(doc: dict, path: Path) -> None:
    """Per sampler: pooled score over the share of the schedule, one line per S; * = S's best, square = the
    reference choice carried as steps, triangle = carried as a share (dotted line: that share)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    c = doc["config"]
    samplers = list(doc["samplers"])
    fig, axes = plt.subplots(1, len(samplers), figsize=(6.5 * len(samplers), 4.8), squeeze=False, sharey=True)
    colours = ["#4c72b0", "#dd8452", "#55a868", "#c44e52", "#8172b3", "#937860"]
    for ax, sampler in zip(axes[0], samplers, strict=True):
        res = doc["samplers"][sampler]
        ax.axvline(res["reference_share"], color="#888888", ls=":", lw=1)
        for (s, at), colour in zip(res["steps"].items(), colours, strict=False):
            scores = {int(d): v["score"] for d, v in at["pooled"]["scores"].items()}
            xs = [100.0 * d / int(s) for d in scores]
            ax.plot(xs, list(scores.values()), "-", color=colour, marker="o", ms=2.5, lw=1.3, label=f"{s} steps")
            b = at["pooled"]
            ax.plot([b["best_share"]], [b["best_score"]], "*", color=colour, ms=11)
            if int(s) != c["reference_steps"]:
                for key, marker in (("step_carry", "s"), ("percent_carry", "^")):
                    k = b[key]
                    ax.plot([k["share"]], [k["score"]], marker, mfc="none", mec=colour, ms=9, mew=1.5)
        ax.set_title(
            f"{sampler}: {c['reference_steps']}-step best delay {res['reference_delay']} ({res['reference_share']:g} %)"
        )
        ax.set_xlabel("delay as share of the sampling steps (%)")
        ax.grid(alpha=0.3)
    axes[0][0].set_ylabel("pooled score")
    handles, _ = axes[0][0].get_legend_handles_labels()
    handles += [
        plt.Line2D([], [], ls="", marker="*", color="k", ms=10, label="best at that S"),
        plt.Line2D(
            [], [], ls="", marker="s", mfc="none", mec="k", label=f"{c['reference_steps']}-step delay, as steps"
        ),
        plt.Line2D([], [], ls="", marker="^", mfc="none", mec="k", label=f"{c['reference_steps']}-step delay, as %"),
    ]
    axes[0][0].legend(handles=handles, fontsize=8, loc="lower left")
    fig.suptitle(
        f"Negative prompt delay vs number of steps on the toy model: {c['cases']} cases x {len(c['negatives'])} "
        f"accessories, CFG {c['cfg_scale']:g}"
    )
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


def build_parser() -> argparse.ArgumentParser:
    """Command-line options."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--steps-list", default="10,20,30,50", help="comma-separated numbers of sampling steps")
    ap.add_argument("--reference-steps", type=int, default=20, help="the S whose best delay is carried (default 20)")
    ap.add_argument("--max-share", type=float, default=60.0, help="run delays up to this %% of S (default 60)")
    add_case_options(ap)
    ap.add_argument("--threads", type=int, default=1, help="torch threads (default 1; 0: torch's default)")
    ap.add_argument("--compare", default=str(BENCH_DELAY_JSON), help="bench_delay.json to compare S = 20 with")
    ap.add_argument("--out", default=str(ROOT / "bench" / "out"))
    ap.add_argument("--replot", metavar="JSON", help="only redraw the plot from a bench_steps.json")
    ap.add_argument(
        "--record-comparison",
        nargs=2,
        metavar=("STEPS_JSON", "DELAY_JSON"),
        help="no run: compare a bench_steps.json's reference S with a bench_delay.json of the same cases (both "
        "--quick, when the study itself used fewer cases than bench_delay) and record it in <out>/bench_steps.json",
    )
    ap.add_argument("--quick", action="store_true", help="16 seeds, 2 prompts per accessory")
    return ap


def main(argv: list[str] | None = None) -> int:
    """Run the study; returns the exit code (1 when a bit-for-bit check fails)."""
    args = build_parser().parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    if args.replot:
        plot(json.loads(Path(args.replot).read_text()), out / "bench_steps.png")
        return 0
    if args.record_comparison:
        return record_comparison(Path(args.record_comparison[0]), Path(args.record_comparison[1]), out)
    if args.quick:
        args.seeds, args.prompts = 16, 2
    steps_list = [int(s) for s in args.steps_list.split(",") if s.strip()]
    if args.reference_steps not in steps_list:
        raise SystemExit(f"--steps-list must contain --reference-steps {args.reference_steps}")
    order = [args.reference_steps] + [s for s in steps_list if s != args.reference_steps]
    samplers = [s.strip() for s in args.samplers.split(",") if s.strip()]
    args.negatives = [n.strip() for n in args.negatives.split(",") if n.strip()]
    if args.threads > 0:
        torch.set_num_threads(args.threads)
    import harness

    started = time.perf_counter()
    model, meter = start_stand_in()
    cases = make_cases(args, model.world_link)
    case_prompts = {n: [p for g in groups for p, _ in g] for n, (_, groups) in cases.items()}
    every = [p for a in args.negatives for p in case_prompts[a]]

    results: dict[str, Any] = {}
    checks: dict[str, dict] = {}
    with torch.inference_mode():
        for sampler in samplers:
            res: dict[str, Any] = {"steps": {}}
            chosen: dict[str, int] = {}  # the reference S's best delay, pooled and per accessory
            checks[sampler] = {}
            for s in order:
                args.steps = s
                pct = share_of(chosen["pooled"], args.reference_steps) if chosen else CHECK_SHARE
                delays = needed_delays(s, args.max_share, list(chosen.values()), args.reference_steps)
                delays = sorted(set(delays) | {Delay(pct, percent=True).steps(s)})
                calls0, hits0, t0 = meter.calls, meter.hits, time.perf_counter()
                images = run_steps(harness, meter, args, sampler, cases, delays, pct)
                seconds = time.perf_counter() - t0
                outcomes = {a: outcomes_at(x["ref"], x["delayed"], a) for a, x in images["negatives"].items()}
                summaries = {a: summarise(outcomes[a], case_prompts[a], delays) for a in args.negatives}
                summaries["pooled"] = summarise(pool(list(outcomes.values())), every, delays)
                if s == args.reference_steps:
                    chosen = {k: best_of(scores_of(v)) for k, v in summaries.items()}
                at: dict[str, Any] = {
                    "delays_evaluated": delays,
                    "grid_top": grid(s, args.max_share)[-1],
                    "timing": {
                        "seconds": round(seconds, 1),
                        "generations": len(args.negatives) * len(cases[args.negatives[0]][1]) * (len(delays) + 3),
                        "unet_calls": meter.calls - calls0,
                        "answered_from_memo": meter.hits - hits0,
                    },
                }
                for key, summ in summaries.items():
                    scores = scores_of(summ)
                    entry = carries(scores, s, chosen[key], args.reference_steps)
                    entry["best_at_range_edge"] = entry["best_delay"] < s and entry["best_delay"] + 1 not in delays
                    entry["scores"] = {str(r["delay"]): {k: r[k] for k in ROW_KEYS} for r in summ["delays"]}
                    entry["cases"] = summ["cases"]
                    entry["rate_without_negative"] = summ["rate_without_negative"]
                    at[key] = entry
                checks[sampler][str(s)] = images["checks"]
                res["steps"][str(s)] = at
                p = at["pooled"]
                print(
                    f"{sampler} S={s}: best {p['best_delay']} ({p['best_score']:.4f}); step carry "
                    f"{p['step_carry']['delay']} {p['step_carry']['ratio']:.3f}; percent carry "
                    f"{p['percent_carry']['delay']} {p['percent_carry']['ratio']:.3f}; {seconds:.0f} s",
                    flush=True,
                )
            res["reference_delay"] = chosen["pooled"]
            res["reference_share"] = share_of(chosen["pooled"], args.reference_steps)
            res["reference_delay_per_accessory"] = {a: chosen[a] for a in args.negatives}
            res["steps"] = {str(s): res["steps"][str(s)] for s in sorted(order)}
            results[sampler] = res
    doc: dict[str, Any] = {
        "config": {
            **case_config(args, cases, samplers, model),
            "cases": len(case_prompts[args.negatives[0]]),
            "cases_pooled": len(every),
            "steps_list": sorted(order),
            "reference_steps": args.reference_steps,
            "max_share_percent": args.max_share,
        },
        "definitions": {
            "score": metrics.SCORE_DEFINITION + " (bench_delay.aggregate); pooled = the three accessories' cases",
            "best_delay": "the evaluated delay with the highest mean score, the earliest on a tie",
            "step_carry": "the reference S's best delay d20 used at S as d20 steps (min(d20, S)); ratio = its score / "
            "S's best score",
            "percent_carry": "the reference S's best delay as the share p = 100 * d20 / reference S, resolved at S "
            "by lib_negative_delay.settings.Delay(p, percent=True).steps(S) = ceil(p * S / 100); ratio = its score / "
            "S's best score",
            "best_at_range_edge": "the delay after the best (below S) was not run: a later delay might score higher",
            "per_accessory": "each accessory's carries use its own best delay at the reference S",
        },
        "checks": checks,
        "samplers": results,
        "seconds": round(time.perf_counter() - started, 1),
    }
    doc = _clean(doc)
    doc["comparison_with_bench_delay"] = compare_with_bench_delay(doc, Path(args.compare))
    (out / "bench_steps.json").write_text(json.dumps(doc, indent=1) + "\n")
    plot(doc, out / "bench_steps.png")
    print(f"comparison with bench_delay.json: {json.dumps(doc['comparison_with_bench_delay'])}")
    print(f"checks: {json.dumps(checks)}; {doc['seconds']} s")
    return 0 if all(all(c.values()) for v in checks.values() for x in v.values() for c in x.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
