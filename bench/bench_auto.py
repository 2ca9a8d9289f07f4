"""Which signal finds the critical step? Detector signals against fixed delays and the per-case oracle.

    .venv/bin/python bench/bench_auto.py [--data bench/results/auto_cases_20.pt] [--collect] [--repeats 5]

Data: `bench/auto_collect.py` (per accessory of the toy world as the negative prompt, 8 prompts that imply it x 16
seeds, Euler, 20 steps, CFG 7; `--collect` runs it when the file is missing).
An image that switches at step k is exactly the image of a fixed delay k, so each detector's outcome is a lookup
into the stored fixed-delay outcomes.

Score per case (`metrics.SCORE_DEFINITION`, the delay benchmark's score): (1 - accessory present) x SSIM outside
the accessory region against the image made without the negative prompt. The oracle takes each case's best fixed
delay; "best fixed" is the single delay with the best mean over all cases.

Each signal's threshold and window (earliest and latest step) are tuned on 7 prompts and scored on the 8th (leave
one prompt out), so the scores are out of sample; windows whose extra model work exceeds `--max-extra-pct` (5 %
of plain CFG's 2 evaluations per image and step) on the training prompts are not allowed. "lag 0": the signal of
step k decides step k (the switch then uses one extra evaluation of the negative branch at k, as the product
does); "lag 1": step k is decided from step k-1's signal (no extra evaluation, but never at step 0).

Per accessory and for the three pooled (cases side by side). The product's defaults (alignment signal:
sensitivity, earliest and latest step) are the setting whose worst accessory does best against that accessory's
own best fixed delay, on every prompt; they are also checked leaving one accessory out (chosen on two, scored on
the third). Also: the defaults' wall-time overhead
against a fixed delay, measured in this run (interleaved repeats on the toy model).
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "webui_standin"), str(ROOT / "bench")]

from auto_policy import (  # noqa: E402
    case_scores,
    extra_evaluations,
    flatten_prompts,
    forecast_auc,
    switch_steps,
    tune_window,
    worst_group_window,
)
from bench_delay import prompt_count  # noqa: E402

from lib_negative_delay.detector import threshold_for  # noqa: E402
from lib_negative_delay.settings import DelaySettings  # noqa: E402
from toy import metrics  # noqa: E402

SIGNALS = {
    # key: (label, switch when higher, extra work kind at lag 0)
    "a_cos": ("a. alignment (cosine, shipped)", True, "every"),
    "a_gain": ("a. alignment (projection gain)", True, "every"),
    "b_mean": ("b. cross-attention mass on the negative's tokens", True, "at_switch"),
    "b_conc": ("b. cross-attention concentration (top 10 %)", True, "at_switch"),
    "c": ("c. x0 stabilisation", False, "at_switch"),
    "w": ("toy-only ceiling: accessory pixels in the positive x0", True, "at_switch"),
}
SPANS = [1, 2, 3, 4, 5, 6, 8, 10, 12, 16, 20]


def thresholds(signal: torch.Tensor, n: int = 50) -> list[float]:
    v = signal[torch.isfinite(signal)].float()
    return sorted({round(float(q), 5) for q in torch.quantile(v, torch.linspace(0.01, 0.99, n))})


def _ratio(a: float, b: float) -> float:
    return round(a / b, 4) if b else float("nan")


def pooled(data: dict, negatives: list[str]) -> dict:
    """The cases of several accessories side by side (last dimension)."""
    return {k: torch.cat([data[n][k] for n in negatives], dim=-1) for k in data[negatives[0]]}


def score_window(data: dict, tau: float, low: int, high: int) -> dict:
    """Alignment detector with one fixed (tau, low, high) on every case of `data`."""
    score = data["score"].float()
    cos = data["a_cos"].float()
    prompts, d1, _ = score.shape
    steps = d1 - 1
    st = [switch_steps(cos[p], tau, True, low, high, 0) for p in range(prompts)]
    s = float(torch.cat([case_scores(score[p], st[p]) for p in range(prompts)]).mean())
    extra = torch.cat([extra_evaluations(x, low, high, "every") for x in st])
    best_fixed = float(score.mean(dim=(0, 2)).max())
    oracle = float(score.max(dim=1).values.mean())
    return {
        "score": round(s, 4),
        "vs_best_fixed": _ratio(s, best_fixed),
        "vs_oracle": _ratio(s, oracle),
        "mean_switch_step": round(float(torch.cat(st).float().mean()), 2),
        "extra_unet_work_pct": round(float(extra.mean()) / (2 * steps) * 100, 2),
    }


def evaluate(data: dict, max_extra_pct: float) -> dict:
    """Fixed delays, oracle, every signal out of sample (leave one prompt out), the product's defaults."""
    score = data["score"].float()  # [P, D+1, N]
    prompts, d1, _ = score.shape
    steps = d1 - 1
    max_extra = max_extra_pct / 100 * 2 * steps
    by_delay = score.mean(dim=(0, 2))
    best_delay = int(by_delay.argmax())
    best_fixed = float(by_delay[best_delay])
    oracle = float(score.max(dim=1).values.mean())
    rows = []
    for key, (label, higher, kind) in SIGNALS.items():
        signal = data[key].float()
        taus = thresholds(signal)
        for lag in (0, 1):
            lows = list(range(lag, min(steps, 10)))
            kind_here = kind if lag == 0 else "none"
            outs, switches, extra, chosen = [], [], [], []
            for test in range(prompts):
                train = [p for p in range(prompts) if p != test]
                tau, low, high = tune_window(score, signal, train, taus, lows, SPANS, higher, lag, kind_here, max_extra)
                st = switch_steps(signal[test], tau, higher, low, high, lag)
                outs.append(case_scores(score[test], st))
                switches.append(st.float())
                extra.append(extra_evaluations(st, low, high, kind_here))
                chosen.append([tau, low, high])
            s = float(torch.cat(outs).mean())
            rows.append(
                {
                    "signal": key,
                    "label": label,
                    "lag": lag,
                    "score": round(s, 4),
                    "vs_best_fixed": _ratio(s, best_fixed),
                    "vs_oracle": _ratio(s, oracle),
                    "mean_switch_step": round(float(torch.cat(switches).mean()), 2),
                    "extra_unet_work_pct": round(float(torch.cat(extra).mean()) / (2 * steps) * 100, 2),
                    "tuned_tau_low_high_per_fold": chosen,
                }
            )
    ref = data["present_ref"]

    def if_known(wearers_at: int) -> float:
        """Mean score when the images that draw the accessory switch at ``wearers_at`` and the others never."""
        return float(torch.where(ref, score[:, wearers_at], score[:, steps]).mean())

    wearers_delay = int(score.transpose(1, 2)[ref].mean(dim=0).argmax())  # best delay over the cases that draw it
    return {
        "score_definition": metrics.SCORE_DEFINITION,
        "cases": int(ref.numel()),
        "rate_without_negative": round(float(ref.float().mean()), 4),
        "mean_score_by_delay": [round(float(x), 4) for x in by_delay],
        "rate_by_delay": [round(float(x), 4) for x in data["present"].float().mean(dim=(0, 2))],
        "oracle_delay_histogram": torch.bincount(score.argmax(dim=1).flatten(), minlength=d1).tolist(),
        "best_fixed_delay": best_delay,
        "best_fixed_score": round(best_fixed, 4),
        "oracle_score": round(oracle, 4),
        "perfect_presence_forecast": {
            "what": "delay 0 for images that draw the accessory without the negative prompt, never for the others",
            "score": round(if_known(0), 4),
            "vs_best_fixed": _ratio(if_known(0), best_fixed),
        },
        "presence_known": {
            "what": "the best single delay for the images that draw the accessory without the negative prompt, "
            "never for the others: what a detector that forecast presence perfectly could reach",
            "wearers_delay": wearers_delay,
            "score": round(if_known(wearers_delay), 4),
            "vs_best_fixed": _ratio(if_known(wearers_delay), best_fixed),
        },
        "signals": rows,
        "presence_forecast_auc": {
            "what": "ROC AUC of each signal at step k (k = 0..9) for 'this image draws the accessory without the "
            "negative prompt', over every case; 0.5 is chance, 1 a perfect forecast (null: not measured at k)",
            **{key: forecast_by_step(data[key], ref, min(steps, 10)) for key in SIGNALS},
        },
    }


def forecast_by_step(signal: torch.Tensor, present: torch.Tensor, upto: int) -> list[float | None]:
    """signal [P, steps, n], present [P, n] -> AUC of step k's signal forecasting presence, k < upto (None: the
    signal is not measured at k, as x0 stabilisation at step 0)."""
    aucs = [forecast_auc(signal[:, k, :], present) for k in range(upto)]
    return [None if math.isnan(a) else round(a, 3) for a in aucs]


def choose_defaults(data: dict, negatives: list[str], max_extra_pct: float) -> dict:
    """The product's defaults for the alignment detector: the sensitivity (on the slider's 0.05 grid), earliest
    and latest step whose worst accessory scores best against its own best fixed delay (`worst_group_window`),
    at most `max_extra_pct` extra model work for each accessory; and the same choice leaving one accessory out
    (chosen on the others, scored on it)."""
    steps = data[negatives[0]]["score"].shape[1] - 1
    max_extra = max_extra_pct / 100 * 2 * steps
    grid = [round(0.05 * i, 2) for i in range(21)]  # sensitivities the slider can hit
    taus = [threshold_for(x) for x in grid]
    lows = list(range(0, min(steps, 10)))

    def groups(names: list[str]) -> list[tuple[torch.Tensor, torch.Tensor]]:
        every = range(data[names[0]]["score"].shape[0])
        return [
            (flatten_prompts(data[n]["score"].float(), every), flatten_prompts(data[n]["a_cos"].float(), every))
            for n in names
        ]

    def fit(names: list[str]) -> tuple[float, int, int]:
        tau, low, high = worst_group_window(groups(names), taus, lows, SPANS, max_extra)
        return grid[taus.index(tau)], low, high

    sens, low, high = fit(negatives)
    tau = threshold_for(sens)
    out = {
        "rule": "the highest worst-accessory score, each accessory against its own best fixed delay",
        "sensitivity": sens,
        "tau": round(tau, 4),
        "earliest": low,
        "latest": high,
        "pooled": score_window(pooled(data, negatives), tau, low, high),
        "per_accessory": {n: score_window(data[n], tau, low, high) for n in negatives},
        "leave_one_accessory_out": {},
    }
    for n in negatives:
        x, lo, hi = fit([m for m in negatives if m != n])
        out["leave_one_accessory_out"][n] = {
            "sensitivity": x,
            "earliest": lo,
            "latest": hi,
            **score_window(data[n], threshold_for(x), lo, hi),
        }
    return out


def measure_overhead(repeats: int, steps: int, batch: int) -> dict:
    """Wall time and model rows of auto mode (defaults) against fixed delay 0, interleaved, on the toy model."""
    import harness

    from lib_negative_delay import TITLE
    from toy.model import ToyLDM

    model = ToyLDM.load()
    harness.start(str(ROOT), model)
    rows = [0]
    model.model.register_forward_pre_hook(
        lambda m, args, kwargs: rows.__setitem__(0, rows[0] + args[0].shape[0]), with_kwargs=True
    )
    d = DelaySettings()
    modes = {
        "fixed_0": [True, 0],
        "fixed_3": [True, 3],
        "auto": [True, 3, True, d.sensitivity, d.auto_min, d.auto_max],
    }
    base = dict(
        prompt="red circle on blue background",
        negative_prompt="glasses",
        steps=steps,
        sampler_name="Euler",
        width=32,
        height=32,
        batch_size=batch,
        seed=77,
        cfg_scale=7.0,
    )
    times: dict[str, list[float]] = {k: [] for k in modes}
    counted: dict[str, int] = {}
    for r in range(repeats + 1):
        for name, args in modes.items():
            rows[0] = 0
            t0 = time.perf_counter()
            harness.txt2img(**base, alwayson_scripts={TITLE: {"args": args}})
            if r:  # the first round warms up
                times[name].append(time.perf_counter() - t0)
            counted[name] = rows[0]
    med = {k: statistics.median(v) for k, v in times.items()}
    return {
        "setup": f"toy model, Euler {steps} steps, batch {batch}, {repeats} interleaved repeats, medians",
        "seconds": {k: round(v, 4) for k, v in med.items()},
        "ratio_auto_vs_fixed_3": round(med["auto"] / med["fixed_3"], 4),
        "ratio_fixed_3_vs_fixed_0": round(med["fixed_3"] / med["fixed_0"], 4),
        "model_rows": counted,
    }


def plot(report: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    pooled_rows = report["pooled"]["signals"]
    labels = [f"{r['signal']} lag {r['lag']}" for r in pooled_rows] + [
        "a_cos, defaults chosen (worst accessory)",
        "shipped defaults",
    ]
    values = [r["vs_oracle"] for r in pooled_rows] + [report["defaults"]["pooled"]["vs_oracle"]]
    values.append(report["shipped"]["pooled"]["vs_oracle"])
    colors = ["#4c72b0" if r["lag"] == 0 else "#9fb3d1" for r in pooled_rows] + ["#c9a27e", "#dd8452"]
    fig, ax = plt.subplots(figsize=(8.5, 4.6))
    ax.barh(range(len(values)), values, color=colors, label="all accessories pooled")
    marks = {"hat": "o", "glasses": "s", "stripes": "^"}
    for n, res in report["accessories"].items():
        xs = [r["vs_oracle"] for r in res["signals"]] + [report["defaults"]["per_accessory"][n]["vs_oracle"]]
        xs.append(report["shipped"]["per_accessory"][n]["vs_oracle"])
        ax.plot(xs, range(len(xs)), marks.get(n, "x"), color="k", ms=4, ls="", label=n)
    ax.set_yticks(range(len(values)), labels, fontsize=8)
    ax.invert_yaxis()
    fixed = report["pooled"]["best_fixed_score"] / report["pooled"]["oracle_score"]
    ax.axvline(fixed, color="k", ls="--", lw=1)
    ax.text(fixed, len(values) - 0.3, f" best fixed delay ({report['pooled']['best_fixed_delay']})", fontsize=8)
    ax.axvline(0.9, color="r", ls=":", lw=1)
    ax.set_xlim(0.4, 1.0)
    ax.legend(fontsize=7, loc="upper left")
    ax.set_xlabel("mean score / oracle (out of sample, leave one prompt out)")
    c = report["config"]
    ax.set_title(
        f"Auto-detection on the bundled model ({prompt_count(c)} prompts x {c['seeds']} seeds x "
        f"{len(c['negatives'])} accessories, Euler {c['steps']} steps)",
        fontsize=9,
    )
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", default=str(ROOT / "bench" / "results" / "auto_cases_20.pt"))
    ap.add_argument("--collect", action="store_true", help="collect the data first when the file is missing")
    ap.add_argument("--repeats", type=int, default=5, help="timing repeats of the overhead measurement")
    ap.add_argument("--max-extra-pct", type=float, default=5.0, help="extra model work allowed when tuning")
    ap.add_argument("--results", default=str(ROOT / "bench" / "results"))
    ap.add_argument("--threads", type=int, default=1, help="torch CPU threads (default 1: small tensors)")
    args = ap.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    data_path = Path(args.data)
    if not data_path.exists():
        if not args.collect:
            raise SystemExit(f"{data_path} is missing: run bench/auto_collect.py or pass --collect")
        import auto_collect

        auto_collect.main(["--out", str(data_path)])
    data = torch.load(data_path)
    negatives = list(data["config"]["negatives"])
    report = {
        "config": data["config"],
        "max_extra_pct": args.max_extra_pct,
        "accessories": {n: evaluate(data[n], args.max_extra_pct) for n in negatives},
        "pooled": evaluate(pooled(data, negatives), args.max_extra_pct),
        "defaults": choose_defaults(data, negatives, args.max_extra_pct),
    }
    d = DelaySettings()
    report["shipped"] = {
        "sensitivity": d.sensitivity,
        "tau": round(threshold_for(d.sensitivity), 4),
        "earliest": d.auto_min,
        "latest": d.auto_max,
        "pooled": score_window(pooled(data, negatives), threshold_for(d.sensitivity), d.auto_min, d.auto_max),
        "per_accessory": {
            n: score_window(data[n], threshold_for(d.sensitivity), d.auto_min, d.auto_max) for n in negatives
        },
    }
    if args.repeats:
        report["overhead"] = measure_overhead(args.repeats, int(data["config"]["steps"]), 8)
    out = Path(args.results)
    out.mkdir(parents=True, exist_ok=True)
    (out / "bench_auto.json").write_text(json.dumps(report, indent=2))
    plot(report, out / "bench_auto.png")
    for name, res in [*report["accessories"].items(), ("pooled", report["pooled"])]:
        print(
            f"== {name}: best fixed {res['best_fixed_delay']} ({res['best_fixed_score']:.4f}), oracle "
            f"{res['oracle_score']:.4f}, by delay {res['mean_score_by_delay']}"
        )
        known = res["presence_known"]
        print(
            f"presence known: wearers at {known['wearers_delay']}, others never: {known['vs_best_fixed']:.3f} of "
            "best fixed"
        )
        aucs = res["presence_forecast_auc"]
        print("presence forecast AUC, steps 0-9: " + "; ".join(f"{k} {aucs[k]}" for k in SIGNALS))
        for r in res["signals"]:
            print(
                f"{r['signal']:7s} lag {r['lag']}: {r['vs_best_fixed']:.3f} of best fixed, {r['vs_oracle']:.3f} of "
                f"oracle, switch {r['mean_switch_step']:.2f}, +{r['extra_unet_work_pct']:.1f} % UNet work"
            )
    print(json.dumps({k: report[k] for k in ("defaults", "shipped")}, indent=1))
    if "overhead" in report:
        print(json.dumps(report["overhead"], indent=1))


if __name__ == "__main__":
    main()
