"""Benchmark: what delaying the negative prompt does on the bundled toy model, for every delay 0..steps.

    python bench/bench_delay.py                      # full run (bash dev bench)
    python bench/bench_delay.py --quick              # 16 seeds, 2 prompts: a few minutes, to estimate
    python bench/bench_delay.py --seeds 64 --steps 20 --samplers "Euler,DPM++ 2M" --out bench/out

Every image goes through the WebUI stand-in with the real extension script (txt2img, 32x32, CFG 7). Cases are
(prompt, seed) pairs: prompts from `toy.train.eval_prompts` (they never name the hat), negative prompt "hat".
`--pairing cycle` (default) gives seed i the prompt i mod P, so S seeds make S cases spread over P prompts and
one batch of S images per generation; `--pairing cross` makes every prompt with every seed (P x S cases).

Per case and sampler the benchmark generates: the reference without a negative prompt, the negative prompt from
step 0 with the extension disabled, and the extension enabled with every delay 0..steps. It checks that delay 0
equals the disabled run and delay = steps equals the reference, bit for bit. Per (sampler, delay): hat rate,
removal success (hat present without the negative, absent with it; over the cases with a hat without), reverse
activation (absent without, present with; over the cases without), PSNR/SSIM outside the hat regions versus the
reference of the same case, and a combined per-case score (see `metrics.SCORE_DEFINITION`); the best fixed delay
is the one with the highest mean score.

Speed-up (exact): the model's `apply_model` is wrapped by a memo keyed on the bytes of its inputs. The reference
and the disabled run are stored; a delayed run's first N steps feed the UNet exactly what the reference fed it
(same latents, same empty-prompt conditioning), so they are answered from the memo, and delay 0 is answered
entirely by the disabled run. Any difference in the inputs is a miss and is computed; hits and misses are reported.
`--no-memo` turns it off.

Cost: wall time of txt2img with the extension on (delay steps // 2) versus off, interleaved repeats, medians,
without the memo; and the number of UNet evaluations on versus off (they must be equal).

Writes <out>/bench_delay.json, <out>/bench_delay.png and <out>/table.md.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import math
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import torch

ROOT = Path(__file__).resolve().parents[1]
for _p in (str(ROOT / "webui_standin"), str(ROOT)):
    if _p not in sys.path:
        sys.path.insert(0, _p)

from toy import metrics  # noqa: E402
from toy.model import ToyLDM  # noqa: E402
from toy.presence import accessory_present, detector_accuracy  # noqa: E402
from toy.train import eval_prompts  # noqa: E402

TITLE = "Negative Prompt Delay"
PSNR_CAP_DB = 100.0


class UNetMeter:
    """Replaces `model.apply_model`: counts calls and, when `memo` is on, answers repeated inputs from a memo.

    `store` decides whether computed results are kept (only the reference runs are stored)."""

    def __init__(self, model: Any) -> None:
        self.model = model
        self.inner = model.apply_model
        self.calls = 0
        self.hits = 0
        self.memo_on = False
        self.store = False
        self.memo: dict[bytes, torch.Tensor] = {}
        model.apply_model = self

    @staticmethod
    def _feed(h: Any, obj: Any) -> None:
        if isinstance(obj, torch.Tensor):
            t = obj.detach().contiguous().cpu()
            h.update(f"{t.dtype}{tuple(t.shape)}".encode())
            h.update(t.numpy().tobytes())
        elif isinstance(obj, dict):
            for k in sorted(obj):
                h.update(str(k).encode())
                UNetMeter._feed(h, obj[k])
        elif isinstance(obj, (list, tuple)):
            h.update(b"[")
            for v in obj:
                UNetMeter._feed(h, v)
            h.update(b"]")
        else:
            h.update(repr(obj).encode())

    def key(self, *args: Any, **kwargs: Any) -> bytes:
        h = hashlib.blake2b(digest_size=20)
        self._feed(h, list(args))
        self._feed(h, kwargs)
        return h.digest()

    def __call__(self, *args: Any, **kwargs: Any) -> torch.Tensor:
        self.calls += 1
        if not self.memo_on:
            return self.inner(*args, **kwargs)
        k = self.key(*args, **kwargs)
        hit = self.memo.get(k)
        if hit is not None:
            self.hits += 1
            return hit.clone()
        out = self.inner(*args, **kwargs)
        if self.store:
            self.memo[k] = out.detach().clone()
        return out


def generate(
    harness: Any, prompts: list[str], negative: str, seed: int, args: argparse.Namespace, sampler: str, ext: list
) -> torch.Tensor:
    """One txt2img of len(prompts) images (per-image prompts, seeds seed..seed+n-1) -> [N,3,32,32] in [0,1]."""
    res = harness.txt2img(
        prompt=list(prompts),
        negative_prompt=negative,
        steps=args.steps,
        sampler_name=sampler,
        scheduler="Automatic",
        seed=seed,
        batch_size=len(prompts),
        cfg_scale=args.cfg,
        width=32,
        height=32,
        alwayson_scripts={TITLE: {"args": ext}},
    )
    return torch.stack([torch.as_tensor(im).float() for im in res.images])


def distinct_prompts(n: int, seed: int) -> list[str]:
    """`n` different prompts from `eval_prompts` (which may repeat a prompt): the first n distinct ones."""
    k = n
    while True:
        prompts = list(dict.fromkeys(eval_prompts(k, seed=seed)))
        if len(prompts) >= n or k > 64 * n:
            return prompts[:n]
        k *= 2


def make_cases(args: argparse.Namespace) -> tuple[list[str], list[list[tuple[str, int]]]]:
    """(prompts, generation groups): each group is a list of (prompt, seed) with consecutive seeds."""
    prompts = distinct_prompts(args.prompts, args.prompt_seed)
    seeds = list(range(args.first_seed, args.first_seed + args.seeds))
    groups: list[list[tuple[str, int]]] = []
    if args.pairing == "cycle":
        cases = [(prompts[i % len(prompts)], s) for i, s in enumerate(seeds)]
        groups = [cases[i : i + args.batch] for i in range(0, len(cases), args.batch)]
    else:
        for p in prompts:
            groups += [[(p, s) for s in seeds[i : i + args.batch]] for i in range(0, len(seeds), args.batch)]
    return prompts, groups


def run_delays(harness: Any, meter: UNetMeter, args: argparse.Namespace, sampler: str, groups: list, bar: Any) -> dict:
    """All generations for one sampler; returns per-delay image tensors plus reference/plain, cases concatenated."""
    ref_all, plain_all, delayed_all = [], [], {d: [] for d in range(args.steps + 1)}
    checks = {"delay0_equals_disabled": True, "delay_steps_equals_no_negative": True}
    for group in groups:
        prompts = [p for p, _ in group]
        seed = group[0][1]
        meter.memo.clear()
        meter.memo_on = not args.no_memo
        meter.store = True
        ref = generate(harness, prompts, "", seed, args, sampler, [False, 0])
        bar.update(1)
        plain = generate(harness, prompts, args.negative, seed, args, sampler, [False, 0])
        bar.update(1)
        meter.store = False
        for d in range(args.steps + 1):
            delayed_all[d].append(generate(harness, prompts, args.negative, seed, args, sampler, [True, d]))
            bar.update(1)
        checks["delay0_equals_disabled"] &= bool(torch.equal(delayed_all[0][-1], plain))
        checks["delay_steps_equals_no_negative"] &= bool(torch.equal(delayed_all[args.steps][-1], ref))
        ref_all.append(ref)
        plain_all.append(plain)
        meter.memo.clear()
        meter.memo_on = False
    return {
        "ref": torch.cat(ref_all),
        "plain": torch.cat(plain_all),
        "delayed": {d: torch.cat(v) for d, v in delayed_all.items()},
        "checks": checks,
    }


def _mean(xs: list[float]) -> float:
    xs = [x for x in xs if not math.isnan(x)]
    return sum(xs) / len(xs) if xs else math.nan


def _clean(x: Any) -> Any:
    """JSON-safe: nan -> None, floats rounded."""
    if isinstance(x, float):
        return None if math.isnan(x) else round(x, 5)
    if isinstance(x, dict):
        return {k: _clean(v) for k, v in x.items()}
    if isinstance(x, list):
        return [_clean(v) for v in x]
    return x


def evaluate(images: dict, case_prompts: list[str], prompts: list[str], steps: int) -> dict:
    """Per-delay aggregates for one sampler."""
    ref = images["ref"]
    hat_ref = accessory_present(ref * 2 - 1)
    rows = []
    for d in range(steps + 1):
        img = images["delayed"][d]
        hat = accessory_present(img * 2 - 1)
        pres = metrics.preservation(img, ref)
        p = pres["psnr"].clamp(max=PSNR_CAP_DB)
        s = pres["ssim"]
        score = metrics.case_score(hat, s)
        per_prompt = {}
        for pr in prompts:
            idx = torch.tensor([cp == pr for cp in case_prompts])
            per_prompt[pr] = {
                "hat_rate": float(hat[idx].float().mean()),
                "removal": metrics.removal_rate(hat_ref[idx], hat[idx]),
                "reverse": metrics.reverse_rate(hat_ref[idx], hat[idx]),
                "ssim": float(s[idx].mean()),
            }
        n_with = int(hat_ref.sum())
        rows.append(
            {
                "delay": d,
                "hat_rate": float(hat.float().mean()),
                "removal": metrics.removal_rate(hat_ref, hat),
                "removed": int(metrics.removal_success(hat_ref, hat).sum()),
                "hat_without_negative": n_with,
                "reverse": metrics.reverse_rate(hat_ref, hat),
                "reversed": int(metrics.reverse_activation(hat_ref, hat).sum()),
                "no_hat_without_negative": len(hat_ref) - n_with,
                "psnr": float(p.mean()),
                "ssim": float(s.mean()),
                "ssim_removed_cases": _mean(s[metrics.removal_success(hat_ref, hat)].tolist()),
                "score": float(score.mean()),
                "score_sem": float(score.std() / math.sqrt(len(score))) if len(score) > 1 else math.nan,
                "per_prompt": per_prompt,
            }
        )
    best = max(rows, key=lambda r: r["score"])
    return {
        "hat_rate_without_negative": float(hat_ref.float().mean()),
        "delays": rows,
        "best_delay": best["delay"],
        "best_score": best["score"],
    }


def measure_cost(harness: Any, meter: UNetMeter, args: argparse.Namespace, sampler: str) -> dict:
    """Interleaved on/off timings of whole txt2img calls (no memo) and UNet evaluation counts."""
    prompts = eval_prompts(args.timing_batch, seed=args.prompt_seed)
    delay = args.steps // 2
    times: dict[str, list[float]] = {"off": [], "on": []}
    cpu: dict[str, list[float]] = {"off": [], "on": []}
    calls: dict[str, list[int]] = {"off": [], "on": []}
    meter.memo_on = False
    generate(harness, prompts, args.negative, 0, args, sampler, [False, 0])  # warm-up
    for r in range(args.timing_repeats):
        order = ["off", "on"] if r % 2 == 0 else ["on", "off"]
        for mode in order:
            ext = [mode == "on", delay]
            before = meter.calls
            t0, c0 = time.perf_counter(), time.process_time()
            generate(harness, prompts, args.negative, 0, args, sampler, ext)
            times[mode].append(time.perf_counter() - t0)
            cpu[mode].append(time.process_time() - c0)
            calls[mode].append(meter.calls - before)
    med_on, med_off = statistics.median(times["on"]), statistics.median(times["off"])
    return {
        "sampler": sampler,
        "batch_size": args.timing_batch,
        "delay_on": delay,
        "repeats": args.timing_repeats,
        "median_seconds_off": med_off,
        "median_seconds_on": med_on,
        "ratio_on_off": med_on / med_off,
        "cpu_ratio_on_off": statistics.median(cpu["on"]) / statistics.median(cpu["off"]),
        "seconds_off": times["off"],
        "seconds_on": times["on"],
        "unet_calls_per_generation_off": sorted(set(calls["off"])),
        "unet_calls_per_generation_on": sorted(set(calls["on"])),
        "unet_calls_equal": calls["on"] == calls["off"],
    }


def write_table(doc: dict, path: Path) -> None:
    """Markdown table: rows = delays, per sampler: hat rate / removal / reverse / PSNR / SSIM / score."""
    samplers = list(doc["samplers"])
    head = "| delay |" + "".join(f" {s}: hat / removal / reverse / PSNR / SSIM / score |" for s in samplers)
    lines = [
        f"Toy model, {doc['config']['cases']} cases ({doc['config']['seeds']} seeds, "
        f"{len(set(doc['config']['prompts']))} distinct prompts, pairing {doc['config']['pairing']}), "
        f"{doc['config']['steps']} steps, CFG {doc['config']['cfg_scale']:g}, negative "
        f'"{doc["config"]["negative_prompt"]}". Delay 0 = negative from step 0 (= extension off); '
        f"delay {doc['config']['steps']} = never applied (= no negative). Removal: over cases with a hat without the "
        "negative; reverse: over cases without. PSNR (dB, capped at 100)/SSIM outside the hat regions vs the "
        "no-negative image. Score: " + metrics.SCORE_DEFINITION + ".",
        "",
        head,
        "|---:|" + "---|" * len(samplers),
    ]

    def f(x: float | None, nd: int = 2) -> str:
        return "–" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x:.{nd}f}"

    for d in range(doc["config"]["steps"] + 1):
        cells = []
        for s in samplers:
            r = doc["samplers"][s]["delays"][d]
            best = " **best**" if d == doc["samplers"][s]["best_delay"] else ""
            cells.append(
                f" {f(r['hat_rate'])} / {f(r['removal'])} / {f(r['reverse'])} / {f(r['psnr'], 1)} / "
                f"{f(r['ssim'], 3)} / {f(r['score'], 3)}{best} |"
            )
        lines.append(f"| {d} |" + "".join(cells))
    lines.append("")
    for s in samplers:
        lines.append(f"- {s}: hat rate without negative {doc['samplers'][s]['hat_rate_without_negative']:.2f}")
    lines.append(
        f"- best fixed delay by mean score (samplers averaged): {doc['best_delay_overall']['delay']} "
        f"(score {doc['best_delay_overall']['score']:.3f})"
    )
    for c in doc["cost"]:
        lines.append(
            f"- cost, {c['sampler']}: median wall time on/off = {c['ratio_on_off']:.3f} (CPU time "
            f"{c['cpu_ratio_on_off']:.3f}, {c['repeats']} interleaved repeats, batch {c['batch_size']}); "
            f"UNet calls per generation on {c['unet_calls_per_generation_on']} "
            f"vs off {c['unet_calls_per_generation_off']}"
        )
    lines.append(f"- presence detector accuracy on ground-truth renders: {doc['detector_accuracy']}")
    path.write_text("\n".join(lines) + "\n")


def plot(doc: dict, path: Path) -> None:
    """Curves over the delay, one line per sampler."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    keys = [
        ("removal", "removal success"),
        ("hat_rate", "hat rate"),
        ("reverse", "reverse activation"),
        ("ssim", "SSIM outside hat"),
        ("psnr", "PSNR outside hat (dB)"),
        ("score", "score"),
    ]
    fig, axes = plt.subplots(2, 3, figsize=(12, 6.5))
    for ax, (key, label) in zip(axes.flat, keys, strict=True):
        for s, res in doc["samplers"].items():
            xs = [r["delay"] for r in res["delays"]]
            ys = [math.nan if r[key] is None else r[key] for r in res["delays"]]
            if key == "psnr":  # identical images (delay = steps) sit at the cap: leave them off the curve
                ys = [math.nan if y >= PSNR_CAP_DB else y for y in ys]
            ax.plot(xs, ys, marker="o", ms=3, label=s)
        ax.set_title(label)
        ax.set_xlabel("delay (steps)")
        ax.grid(alpha=0.3)
    axes.flat[0].legend()
    c = doc["config"]
    fig.suptitle(
        f"Negative prompt delay on the toy model: {c['cases']} cases, {c['steps']} steps, CFG {c['cfg_scale']:g}, "
        f'negative "{c["negative_prompt"]}" (delay 0 = from step 0, delay {c["steps"]} = never)'
    )
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


def build_parser() -> argparse.ArgumentParser:
    """Command-line options."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seeds", type=int, default=64, help="number of seeds (default 64)")
    ap.add_argument("--first-seed", type=int, default=0)
    ap.add_argument("--prompts", type=int, default=4, help="number of prompts from eval_prompts (default 4)")
    ap.add_argument("--prompt-seed", type=int, default=1234, help="seed of eval_prompts")
    ap.add_argument("--pairing", choices=["cycle", "cross"], default="cycle")
    ap.add_argument("--negative", default="hat")
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--cfg", type=float, default=7.0)
    ap.add_argument("--samplers", default="Euler,DPM++ 2M", help="comma-separated WebUI sampler names")
    ap.add_argument("--batch", type=int, default=64, help="images per generation (default 64)")
    ap.add_argument("--timing-batch", type=int, default=8)
    ap.add_argument("--timing-repeats", type=int, default=7)
    ap.add_argument(
        "--threads",
        type=int,
        default=0,
        help="torch threads (0: torch's default); 1 avoids oversubscription when another process uses the cores",
    )
    ap.add_argument("--no-memo", action="store_true", help="compute every UNet evaluation")
    ap.add_argument("--out", default=str(ROOT / "bench" / "out"))
    ap.add_argument("--replot", metavar="JSON", help="only rewrite table.md and the plot from a bench_delay.json")
    ap.add_argument("--quick", action="store_true", help="16 seeds, 2 prompts, 3 timing repeats")
    return ap


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark; returns the exit code."""
    args = build_parser().parse_args(argv)
    if args.replot:
        doc = json.loads(Path(args.replot).read_text())
        out = Path(args.out)
        out.mkdir(parents=True, exist_ok=True)
        write_table(doc, out / "table.md")
        plot(doc, out / "bench_delay.png")
        return 0
    if args.quick:
        args.seeds, args.prompts, args.timing_repeats = 16, 2, 3
    samplers = [s.strip() for s in args.samplers.split(",") if s.strip()]
    if args.threads > 0:
        torch.set_num_threads(args.threads)
    import harness
    from tqdm import tqdm

    started = time.perf_counter()
    det_acc = detector_accuracy(n=1024, seed=0)
    det_acc_noisy = detector_accuracy(n=1024, seed=1, noise_std=0.05)
    model = ToyLDM.load()
    harness.start(str(ROOT), model)
    logging.getLogger("negative_prompt_delay").setLevel(logging.ERROR)  # delay >= steps warns on every run
    meter = UNetMeter(model)
    prompts, groups = make_cases(args)
    case_prompts = [p for g in groups for p, _ in g]

    results, cost, checks, memo_stats = {}, [], {}, {}
    total = len(samplers) * len(groups) * (args.steps + 3)
    with torch.inference_mode():
        for sampler in samplers:
            cost.append(measure_cost(harness, meter, args, sampler))
            print(f"{sampler}: on/off wall-time ratio {cost[-1]['ratio_on_off']:.3f}", flush=True)
        with tqdm(total=total, desc="bench", unit="generation") as bar:
            for sampler in samplers:
                calls0, hits0, t0 = meter.calls, meter.hits, time.perf_counter()
                images = run_delays(harness, meter, args, sampler, groups, bar)
                memo_stats[sampler] = {
                    "unet_calls": meter.calls - calls0,
                    "answered_from_memo": meter.hits - hits0,
                    "seconds": round(time.perf_counter() - t0, 1),
                }
                checks[sampler] = images["checks"]
                results[sampler] = evaluate(images, case_prompts, prompts, args.steps)
    overall = []
    for d in range(args.steps + 1):
        overall.append(_mean([results[s]["delays"][d]["score"] for s in samplers]))
    best_overall = max(range(len(overall)), key=lambda d: overall[d])
    doc = {
        "config": {
            "seeds": args.seeds,
            "first_seed": args.first_seed,
            "prompts": prompts,
            "pairing": args.pairing,
            "cases": len(case_prompts),
            "negative_prompt": args.negative,
            "steps": args.steps,
            "cfg_scale": args.cfg,
            "samplers": samplers,
            "scheduler": "Automatic",
            "size": "32x32",
            "batch": args.batch,
            "torch_threads": torch.get_num_threads(),
            "memo": not args.no_memo,
            "quick": args.quick,
        },
        "definitions": {
            "hat": "toy.presence.accessory_present on the generated image",
            "removal": "share of cases with a hat without the negative prompt that have none with it",
            "reverse": "share of cases without a hat without the negative prompt that have one with it",
            "psnr_ssim": "vs the no-negative image of the same case, outside the union of both images' hat regions "
            f"(dilated 2 px); PSNR capped at {PSNR_CAP_DB:g} dB",
            "score": metrics.SCORE_DEFINITION,
            "delay": "0 = negative prompt from step 0 (same as extension off); steps = never applied",
        },
        "detector_accuracy": det_acc,
        "detector_accuracy_noise_0.05": det_acc_noisy,
        "detector_ok": det_acc >= 0.95,
        "checks": checks,
        "memo": memo_stats,
        "cost": cost,
        "samplers": results,
        "score_by_delay_samplers_averaged": overall,
        "best_delay_overall": {"delay": best_overall, "score": overall[best_overall]},
        "seconds": round(time.perf_counter() - started, 1),
    }
    doc = _clean(doc)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "bench_delay.json").write_text(json.dumps(doc, indent=1) + "\n")
    write_table(doc, out / "table.md")
    plot(doc, out / "bench_delay.png")
    print((out / "table.md").read_text())
    print(f"memo: {json.dumps(memo_stats)}; checks: {json.dumps(checks)}; {doc['seconds']} s")
    ok = (
        doc["detector_ok"]
        and all(c["unet_calls_equal"] for c in cost)
        and all(all(v.values()) for v in checks.values())
    )
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
