"""Which signal finds the critical step? Detector signals against fixed delays and the per-case oracle.

    .venv/bin/python bench/bench_auto.py [--data bench/results/auto_cases_10.pt] [--collect] [--repeats 5]

Data: `bench/auto_collect.py` (8 prompts x 32 seeds, Euler, 10 steps, CFG 7, negative "hat"; about 15 min on
2 cores; `--collect` runs it when the file is missing). An image that switches at step k is exactly the image
of a fixed delay k, so each detector's outcome is a lookup into the stored fixed-delay outcomes.

Score per case (`metrics.SCORE_DEFINITION`, the delay benchmark's score): (1 - hat present) x SSIM outside the
hat region against the image made without the negative prompt. The oracle takes each case's best fixed delay;
"best fixed" is the single delay with the best mean over all cases.

Each signal's threshold and latest step are tuned on 7 prompts and scored on the 8th (leave one prompt out),
so the scores are out of sample. "lag 0": the signal of step k decides step k (the switch then uses one extra
evaluation of the negative branch at k, as the product does); "lag 1": step k is decided from step k-1's
signal (no extra evaluation, but never at step 0). Extra UNet work counts the negative-branch evaluations
against the 2 evaluations per image and step of plain CFG.

Also: the product's own default (alignment, sensitivity 0.5, steps 0-3) on the same cases, and its wall-time
overhead against a fixed delay, measured in this run (interleaved repeats on the toy model).
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
sys.path[:0] = [str(ROOT), str(ROOT / "webui_standin"), str(ROOT / "bench")]

from auto_policy import case_scores, extra_evaluations, switch_steps, tune  # noqa: E402

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
    "w": ("toy-only ceiling: hat pixels in the positive x0", True, "at_switch"),
}


def thresholds(signal: torch.Tensor, n: int = 50) -> list[float]:
    v = signal[torch.isfinite(signal)].float()
    return sorted({round(float(q), 5) for q in torch.quantile(v, torch.linspace(0.01, 0.99, n))})


def evaluate(data: dict) -> dict:
    score = data["score"].float()  # [P, D+1, N]
    prompts, d1, _ = score.shape
    steps = d1 - 1
    by_delay = score.mean(dim=(0, 2))
    best_delay = int(by_delay.argmax())
    best_fixed = float(by_delay[best_delay])
    oracle = float(score.max(dim=1).values.mean())
    rows = []
    for key, (label, higher, kind) in SIGNALS.items():
        signal = data[key].float()
        taus = thresholds(signal)
        for lag in (0, 1):
            low = lag
            outs, switches, extra, chosen = [], [], [], []
            for test in range(prompts):
                train = [p for p in range(prompts) if p != test]
                tau, high = tune(score, signal, train, taus, list(range(low + 1, steps + 1)), higher, low, lag)
                st = switch_steps(signal[test], tau, higher, low, high, lag)
                outs.append(case_scores(score[test], st))
                switches.append(st.float())
                extra.append(extra_evaluations(st, low, high, kind if lag == 0 else "none"))
                chosen.append([tau, high])
            s = float(torch.cat(outs).mean())
            rows.append(
                {
                    "signal": key,
                    "label": label,
                    "lag": lag,
                    "score": round(s, 4),
                    "vs_best_fixed": round(s / best_fixed, 4),
                    "vs_oracle": round(s / oracle, 4),
                    "mean_switch_step": round(float(torch.cat(switches).mean()), 2),
                    "extra_unet_work_pct": round(float(torch.cat(extra).mean()) / (2 * steps) * 100, 2),
                    "tuned_tau_high_per_fold": chosen,
                }
            )
    hat_ref = data["hat_ref"]
    whether = torch.where(hat_ref, score[:, 0], score[:, steps])
    default = DelaySettings()
    tau = threshold_for(default.sensitivity)
    cosines = data["a_cos"].float()
    st = [switch_steps(cosines[p], tau, True, default.auto_min, default.auto_max, 0) for p in range(prompts)]
    product = float(torch.cat([case_scores(score[p], st[p]) for p in range(prompts)]).mean())
    product_extra = torch.cat([extra_evaluations(s, default.auto_min, default.auto_max, "every") for s in st])
    return {
        "score_definition": metrics.SCORE_DEFINITION,
        "mean_score_by_delay": [round(float(x), 4) for x in by_delay],
        "hat_rate_by_delay": [round(float(x), 4) for x in data["hat"].float().mean(dim=(0, 2))],
        "oracle_delay_histogram": torch.bincount(score.argmax(dim=1).flatten(), minlength=d1).tolist(),
        "best_fixed_delay": best_delay,
        "best_fixed_score": round(best_fixed, 4),
        "oracle_score": round(oracle, 4),
        "perfect_hat_forecast": {
            "what": "delay 0 for images that draw a hat without the negative prompt, never for the others",
            "score": round(float(whether.mean()), 4),
            "vs_best_fixed": round(float(whether.mean()) / best_fixed, 4),
        },
        "signals": rows,
        "product_default": {
            "settings": f"alignment, sensitivity {default.sensitivity} (cosine >= {tau:g}), steps "
            f"{default.auto_min}-{default.auto_max}; chosen on these cases (in-sample)",
            "score": round(product, 4),
            "vs_best_fixed": round(product / best_fixed, 4),
            "vs_oracle": round(product / oracle, 4),
            "mean_switch_step": round(float(torch.cat(st).float().mean()), 2),
            "extra_unet_work_pct": round(float(product_extra.mean()) / (2 * steps) * 100, 2),
        },
    }


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
        negative_prompt="hat",
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

    rows = report["signals"]
    labels = [f"{r['signal']} lag {r['lag']}" for r in rows] + ["shipped default", "perfect hat forecast"]
    values = [r["vs_oracle"] for r in rows]
    values += [report["product_default"]["vs_oracle"]]
    values += [report["perfect_hat_forecast"]["score"] / report["oracle_score"]]
    colors = ["#4c72b0" if r["lag"] == 0 else "#9fb3d1" for r in rows] + ["#dd8452", "#999999"]
    fig, ax = plt.subplots(figsize=(8, 4.2))
    ax.barh(range(len(values)), values, color=colors)
    ax.set_yticks(range(len(values)), labels, fontsize=8)
    ax.invert_yaxis()
    fixed = report["best_fixed_score"] / report["oracle_score"]
    ax.axvline(fixed, color="k", ls="--", lw=1)
    ax.text(fixed, len(values) - 0.4, f" best fixed delay ({report['best_fixed_delay']})", fontsize=8)
    ax.axvline(0.9, color="r", ls=":", lw=1)
    ax.set_xlim(0.7, 1.0)
    ax.set_xlabel("mean score / oracle (out of sample, leave one prompt out)")
    ax.set_title("Auto-detection signals on the bundled model (8 prompts x 32 seeds, Euler 10 steps)", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", default=str(ROOT / "bench" / "results" / "auto_cases_10.pt"))
    ap.add_argument("--collect", action="store_true", help="collect the data first when the file is missing")
    ap.add_argument("--repeats", type=int, default=5, help="timing repeats of the overhead measurement")
    ap.add_argument("--results", default=str(ROOT / "bench" / "results"))
    args = ap.parse_args(argv)
    data_path = Path(args.data)
    if not data_path.exists():
        if not args.collect:
            raise SystemExit(f"{data_path} is missing: run bench/auto_collect.py or pass --collect")
        import auto_collect

        auto_collect.main(["--out", str(data_path)])
    data = torch.load(data_path)
    report = {"config": data["config"], **evaluate(data)}
    report["overhead"] = measure_overhead(args.repeats, int(data["config"]["steps"]), 8)
    out = Path(args.results)
    out.mkdir(parents=True, exist_ok=True)
    (out / "bench_auto.json").write_text(json.dumps(report, indent=2))
    plot(report, out / "bench_auto.png")
    print(json.dumps({k: v for k, v in report.items() if k != "signals"}, indent=2))
    for r in report["signals"]:
        print(
            f"{r['signal']:7s} lag {r['lag']}: {r['vs_best_fixed']:.3f} of best fixed, {r['vs_oracle']:.3f} of oracle, "
            f"switch {r['mean_switch_step']:.2f}, +{r['extra_unet_work_pct']:.1f} % UNet work"
        )


if __name__ == "__main__":
    main()
