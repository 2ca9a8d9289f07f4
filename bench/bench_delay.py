"""Benchmark: what delaying the negative prompt does on the bundled toy model, for every delay 0..steps.

    python bench/bench_delay.py                      # full run (bash dev bench)
    python bench/bench_delay.py --quick              # 16 seeds, 2 prompts: a few minutes, to estimate
    python bench/bench_delay.py --seeds 64 --steps 20 --samplers "Euler,DPM++ 2M" --out bench/out

Every image goes through the WebUI stand-in with the real extension script (txt2img, 32x32, CFG 7). Cases are
(prompt, seed) pairs, per accessory of the toy world ("hat", "glasses", "stripes"), run with the accessory as the
negative prompt and measured by its own detector. The prompts never name an accessory; by default each accessory's
prompts contain a shape it goes with (`toy.world.prompts_implying`: "red circle on ..." for glasses, red being
the colour glasses go with), so the positive prompt implies the accessory, the case where a user reaches for the
negative prompt. `--prompt-set any` gives every accessory the same random prompts.
`--pairing cycle` (default) gives seed i the prompt i mod P, so S seeds make S cases spread over P prompts and
one batch of S images per generation; `--pairing cross` makes every prompt with every seed (P x S cases).

Per case and sampler the benchmark generates: the reference without a negative prompt, the negative prompt from
step 0 with the extension disabled, and the extension enabled with every delay 0..steps. It checks that delay 0
equals the disabled run and delay = steps equals the reference, bit for bit. Per (accessory, sampler, delay):
accessory rate, removal success (present without the negative, absent with it; over the cases with it without),
reverse activation (absent without, present with; over the cases without), PSNR/SSIM outside the accessory
regions versus the reference of the same case, and a combined per-case score (see `metrics.SCORE_DEFINITION`);
the best fixed delay is the one with the highest mean score. "All accessories" pools the cases of the three.

Speed-up (exact): the model's `apply_model` is wrapped by a memo keyed on the bytes of its inputs. The reference
and the disabled runs are stored; a delayed run's first N steps feed the UNet exactly what the reference fed it
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

from toy import metrics, world  # noqa: E402
from toy.model import BUNDLED, ToyLDM  # noqa: E402
from toy.presence import accessory_present, detector_accuracy  # noqa: E402
from toy.train import eval_prompts  # noqa: E402
from toy.world import ACCESSORIES, prompts_implying  # noqa: E402

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
    res = txt2img(harness, prompts, negative, seed, args, sampler, ext)
    return torch.stack([torch.as_tensor(im).float() for im in res.images])


def txt2img(
    harness: Any, prompts: list[str], negative: str, seed: int, args: argparse.Namespace, sampler: str, ext: list
) -> Any:
    """The benchmark's txt2img request (32x32, scheduler Automatic, the extension's args ``ext``): the result."""
    return harness.txt2img(
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


def start_stand_in(kind: str = "eps") -> tuple[Any, UNetMeter]:
    """A bundled model (``toy.model.BUNDLED``) in the WebUI stand-in with this extension, its UNet behind a
    ``UNetMeter`` (returned); the extension's log quietened (a delay at or beyond the steps warns on every run)."""
    import harness

    model = ToyLDM.load(BUNDLED[kind])
    harness.start(str(ROOT), model)
    logging.getLogger("negative_prompt_delay").setLevel(logging.ERROR)
    return model, UNetMeter(model)


def make_cases(
    args: argparse.Namespace, link: str = world.DEFAULT_LINK
) -> dict[str, tuple[list[str], list[list[tuple[str, int]]]]]:
    """Per negative prompt: (prompts, generation groups); each group is a list of (prompt, seed) with consecutive
    seeds. `--prompt-set implied` gives each accessory prompts with a shape it goes with under the model's `link`
    (`world.prompts_implying`), `any` gives every accessory the same prompts."""
    out = {}
    seeds = list(range(args.first_seed, args.first_seed + args.seeds))
    for neg in args.negatives:
        which = neg if args.prompt_set == "implied" else None
        prompts = prompts_implying(which, args.prompts, args.prompt_seed, link=link)
        groups: list[list[tuple[str, int]]] = []
        if args.pairing == "cycle":
            cases = [(prompts[i % len(prompts)], s) for i, s in enumerate(seeds)]
            groups = [cases[i : i + args.batch] for i in range(0, len(cases), args.batch)]
        else:
            for p in prompts:
                groups += [[(p, s) for s in seeds[i : i + args.batch]] for i in range(0, len(seeds), args.batch)]
        out[neg] = (prompts, groups)
    return out


def run_delays(harness: Any, meter: UNetMeter, args: argparse.Namespace, sampler: str, cases: dict, bar: Any) -> dict:
    """All generations for one sampler: per negative prompt and group the reference (no negative), the disabled
    run and every delay; cases concatenated per negative prompt."""
    per_neg: dict[str, dict] = {}
    checks = {n: {"delay0_equals_disabled": True, "delay_steps_equals_no_negative": True} for n in args.negatives}
    for neg in args.negatives:
        got: dict[str, Any] = {"ref": [], "plain": [], "delayed": {d: [] for d in range(args.steps + 1)}}
        for group in cases[neg][1]:
            prompts = [p for p, _ in group]
            seed = group[0][1]
            meter.memo.clear()
            meter.memo_on = not args.no_memo
            meter.store = True
            ref = generate(harness, prompts, "", seed, args, sampler, [False, 0])
            plain = generate(harness, prompts, neg, seed, args, sampler, [False, 0])
            bar.update(2)
            meter.store = False
            delayed = got["delayed"]
            for d in range(args.steps + 1):
                delayed[d].append(generate(harness, prompts, neg, seed, args, sampler, [True, d]))
                bar.update(1)
            for setting in getattr(args, "auto_settings", ()):
                steps = auto_switch_steps(harness, prompts, neg, seed, args, sampler, setting)
                got.setdefault("auto", {}).setdefault(setting, []).extend(steps)
                bar.update(1)
            checks[neg]["delay0_equals_disabled"] &= bool(torch.equal(delayed[0][-1], plain))
            checks[neg]["delay_steps_equals_no_negative"] &= bool(torch.equal(delayed[args.steps][-1], ref))
            got["ref"].append(ref)
            got["plain"].append(plain)
            meter.memo.clear()
            meter.memo_on = False
        per_neg[neg] = {
            "ref": torch.cat(got["ref"]),
            "plain": torch.cat(got["plain"]),
            "delayed": {d: torch.cat(x) for d, x in got["delayed"].items()},
            "auto": got.get("auto", {}),
        }
    return {"negatives": per_neg, "checks": checks}


AutoSetting = tuple[float, int, int]
"""auto mode's (sensitivity, earliest step, latest step)"""


def parse_auto_grid(text: str) -> list[AutoSetting]:
    """``--auto-grid``: "S1,S2/L1-H1,L2-H2" (every sensitivity with every window), or "" for none."""
    if not text.strip():
        return []
    sens, windows = text.split("/")
    out = []
    for s in sens.split(","):
        for w in windows.split(","):
            low, high = (int(x) for x in w.split("-"))
            out.append((float(s), low, high))
    return out


def auto_switch_steps(
    harness: Any, prompts: list[str], negative: str, seed: int, args: argparse.Namespace, sampler: str, setting: tuple
) -> list[int]:
    """Auto mode's switch step per image (the infotext's ``Negative delay steps``): an image that switches at k is the
    image of the fixed delay k, so its outcome is read from the fixed delays' (``auto_outcomes``)."""
    sensitivity, low, high = setting
    res = txt2img(harness, prompts, negative, seed, args, sampler, [True, high, True, sensitivity, low, high])
    text = res.infotexts[0].split("Negative delay steps: ")[1].split(",")[0]
    return [int(x) for x in text.split()]


def auto_outcomes(outcomes: dict, steps: list[int]) -> torch.Tensor:
    """Per case: the benchmark score of the fixed delay the case's image switched at."""
    idx = torch.tensor(steps)
    cases = torch.arange(len(steps))
    return metrics.case_score(outcomes["present"][idx, cases], outcomes["ssim"][idx, cases])


def auto_study(per_neg: dict, outcomes: dict, best: dict) -> dict:
    """Per auto setting: each accessory's mean score against that accessory's best fixed delay, the worst of those
    ratios (the rule that chose the eps model's defaults, here in sample), and the pooled ratio."""
    rows = []
    for setting in next(iter(per_neg.values()))["auto"]:
        row: dict[str, Any] = {"sensitivity": setting[0], "earliest": setting[1], "latest": setting[2]}
        scores = []
        for neg, got in per_neg.items():
            score = auto_outcomes(outcomes[neg], got["auto"][setting])
            scores.append(score)
            row[neg] = {"score": float(score.mean()), "vs_best_fixed": float(score.mean()) / best[neg]}
        row["worst_vs_best_fixed"] = min(row[n]["vs_best_fixed"] for n in per_neg)
        row["pooled_score"] = float(torch.cat(scores).mean())
        row["pooled_vs_best_fixed"] = row["pooled_score"] / best["pooled"]
        rows.append(row)
    chosen = max(rows, key=lambda r: r["worst_vs_best_fixed"]) if rows else None
    return {"settings": rows, "best_by_worst_accessory": chosen}


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


def case_outcomes(ref: torch.Tensor, delayed: dict, accessory: str, steps: int) -> dict:
    """Per-case outcomes of one accessory: present without the negative [N]; per delay present, PSNR, SSIM [D+1, N]."""
    present, psnr, ssim = [], [], []
    for d in range(steps + 1):
        img = delayed[d]
        present.append(accessory_present(img * 2 - 1, accessory))
        pres = metrics.preservation(img, ref, accessory=accessory)
        psnr.append(pres["psnr"].clamp(max=PSNR_CAP_DB))
        ssim.append(pres["ssim"])
    return {
        "present_ref": accessory_present(ref * 2 - 1, accessory),
        "present": torch.stack(present),
        "psnr": torch.stack(psnr),
        "ssim": torch.stack(ssim),
    }


def aggregate(cases: dict, case_prompts: list[str], prompts: list[str]) -> dict:
    """Per-delay aggregates of per-case outcomes (one accessory, or several concatenated)."""
    ref = cases["present_ref"]
    rows = []
    for d in range(cases["present"].shape[0]):
        now, s, p = cases["present"][d], cases["ssim"][d], cases["psnr"][d]
        score = metrics.case_score(now, s)
        per_prompt = {}
        for pr in prompts:
            idx = torch.tensor([cp == pr for cp in case_prompts])
            per_prompt[pr] = {
                "rate": float(now[idx].float().mean()),
                "removal": metrics.removal_rate(ref[idx], now[idx]),
                "reverse": metrics.reverse_rate(ref[idx], now[idx]),
                "ssim": float(s[idx].mean()),
                "score": float(score[idx].mean()),
            }
        n_with = int(ref.sum())
        rows.append(
            {
                "delay": d,
                "rate": float(now.float().mean()),
                "removal": metrics.removal_rate(ref, now),
                "removed": int(metrics.removal_success(ref, now).sum()),
                "present_without_negative": n_with,
                "reverse": metrics.reverse_rate(ref, now),
                "reversed": int(metrics.reverse_activation(ref, now).sum()),
                "absent_without_negative": len(ref) - n_with,
                "psnr": float(p.mean()),
                "ssim": float(s.mean()),
                "ssim_removed_cases": _mean(s[metrics.removal_success(ref, now)].tolist()),
                "score": float(score.mean()),
                "score_sem": float(score.std() / math.sqrt(len(score))) if len(score) > 1 else math.nan,
                "per_prompt": per_prompt,
            }
        )
    best = max(rows, key=lambda r: r["score"])
    return {
        "cases": len(ref),
        "rate_without_negative": float(ref.float().mean()),
        "delays": rows,
        "best_delay": best["delay"],
        "best_score": best["score"],
    }


def pool(outcomes: list[dict]) -> dict:
    """Concatenate the per-case outcomes of several accessories (cases side by side)."""
    return {k: torch.cat([o[k] for o in outcomes], dim=-1) for k in outcomes[0]}


def targets(doc: dict) -> dict:
    """The issue's targets, measured: best pooled delay vs delay 0 per sampler; per-accessory best delays."""
    out: dict[str, Any] = {"samplers": {}}
    for sampler, res in doc["pooled"].items():
        rows = res["delays"]
        best = rows[res["best_delay"]]
        zero = rows[0]
        out["samplers"][sampler] = {
            "best_delay": best["delay"],
            "score_ratio_vs_delay0": best["score"] / zero["score"] if zero["score"] else math.nan,
            "removal_ratio_vs_delay0": best["removal"] / zero["removal"] if zero["removal"] else math.nan,
            "ssim_gain_vs_delay0": best["ssim"] - zero["ssim"],
            "met_best_delay_positive_and_1.05x": best["delay"] > 0 and best["score"] >= 1.05 * zero["score"],
            "met_removal_0.8x_and_ssim_plus_0.03": best["removal"] >= 0.8 * zero["removal"]
            and best["ssim"] >= zero["ssim"] + 0.03,
        }
    spread = {}
    for sampler in doc["pooled"]:
        bests = [doc["accessories"][a][sampler]["best_delay"] for a in doc["accessories"]]
        spread[sampler] = max(bests) - min(bests)
    out["per_accessory_best_delay_spread"] = spread
    out["met_spread_2"] = all(v >= 2 for v in spread.values())
    return out


def measure_cost(harness: Any, meter: UNetMeter, args: argparse.Namespace, sampler: str) -> dict:
    """Interleaved on/off timings of whole txt2img calls (no memo) and UNet evaluation counts."""
    prompts = eval_prompts(args.timing_batch, seed=args.prompt_seed)
    delay = args.steps // 2
    times: dict[str, list[float]] = {"off": [], "on": []}
    cpu: dict[str, list[float]] = {"off": [], "on": []}
    calls: dict[str, list[int]] = {"off": [], "on": []}
    meter.memo_on = False
    generate(harness, prompts, args.negatives[0], 0, args, sampler, [False, 0])  # warm-up
    for r in range(args.timing_repeats):
        order = ["off", "on"] if r % 2 == 0 else ["on", "off"]
        for mode in order:
            ext = [mode == "on", delay]
            before = meter.calls
            t0, c0 = time.perf_counter(), time.process_time()
            generate(harness, prompts, args.negatives[0], 0, args, sampler, ext)
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


def _f(x: float | None, nd: int = 2) -> str:
    return "–" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x:.{nd}f}"


def delay_table(results: dict, steps: int, delays: list[int] | None = None) -> list[str]:
    """Rows = delays; per sampler: rate / removal / reverse / PSNR / SSIM / score (best marked)."""
    samplers = list(results)
    head = "| delay |" + "".join(f" {s}: rate / removal / reverse / PSNR / SSIM / score |" for s in samplers)
    lines = [head, "|---:|" + "---|" * len(samplers)]
    for d in range(steps + 1) if delays is None else delays:
        cells = []
        for s in samplers:
            r = results[s]["delays"][d]
            best = " **best**" if d == results[s]["best_delay"] else ""
            cells.append(
                f" {_f(r['rate'])} / {_f(r['removal'])} / {_f(r['reverse'])} / {_f(r['psnr'], 1)} / "
                f"{_f(r['ssim'], 3)} / {_f(r['score'], 3)}{best} |"
            )
        lines.append(f"| {d} |" + "".join(cells))
    return lines


def best_table(doc: dict) -> list[str]:
    """Rows = accessories and all pooled; per sampler: best delay, its score, delay 0's score, ratio."""
    samplers = doc["config"]["samplers"]
    head = "| accessory | rate without negative |" + "".join(
        f" {s}: best delay (score; delay 0; ratio) |" for s in samplers
    )
    lines = [head, "|---|---:|" + "---|" * len(samplers)]
    named = [(a, doc["accessories"][a]) for a in doc["accessories"]] + [("all three, pooled", doc["pooled"])]
    for name, res in named:
        rate = res[samplers[0]]["rate_without_negative"]
        cells = []
        for s in samplers:
            r = res[s]
            b, z = r["best_score"], r["delays"][0]["score"]
            cells.append(f" **{r['best_delay']}** ({b:.3f}; {z:.3f}; {b / z if z else math.nan:.2f}×) |")
        lines.append(f"| {name} | {rate:.2f} |" + "".join(cells))
    return lines


def prompt_count(config: dict) -> int:
    """Distinct prompts per accessory of a benchmark's config (older data files hold one list for all)."""
    prompts = config["prompts"]
    return len(set(next(iter(prompts.values())) if isinstance(prompts, dict) else prompts))


def write_table(doc: dict, path: Path) -> None:
    """Markdown: the best delay per accessory, the pooled per-delay table, then one per-delay table per accessory."""
    c = doc["config"]
    lines = [
        f"Toy model, {c['cases']} cases per accessory ({c['seeds']} seeds, {prompt_count(c)} distinct prompts per "
        f"accessory ({c.get('prompt_set', 'any')}), pairing {c['pairing']}), negatives "
        f"{', '.join(repr(n) for n in c['negatives'])}, "
        f"{c['steps']} steps, CFG {c['cfg_scale']:g}. Delay 0 = negative from step 0 (= extension off); delay "
        f"{c['steps']} = never applied (= no negative). Removal: over cases with the accessory without the negative; "
        "reverse: over cases without. PSNR (dB, capped at 100)/SSIM outside the accessory regions vs the no-negative "
        "image. Score: " + metrics.SCORE_DEFINITION + ".",
        "",
        "Best fixed delay by mean score:",
        "",
        *best_table(doc),
        "",
        "All three accessories pooled:",
        "",
        *delay_table(doc["pooled"], c["steps"]),
    ]
    for a, res in doc["accessories"].items():
        lines += ["", f"Negative {a!r}:", "", *delay_table(res, c["steps"])]
    lines.append("")
    t = doc["targets"]
    for s, v in t["samplers"].items():
        lines.append(
            f"- {s}: best pooled delay {v['best_delay']}, score {_f(v['score_ratio_vs_delay0'], 3)}× delay 0, removal "
            f"{_f(v['removal_ratio_vs_delay0'], 2)}× delay 0, SSIM {v['ssim_gain_vs_delay0']:+.3f} vs delay 0"
        )
    lines.append(f"- spread of the per-accessory best delays: {t['per_accessory_best_delay_spread']}")
    for cost in doc["cost"]:
        lines.append(
            f"- cost, {cost['sampler']}: median wall time on/off = {cost['ratio_on_off']:.3f} (CPU time "
            f"{cost['cpu_ratio_on_off']:.3f}, {cost['repeats']} interleaved repeats, batch {cost['batch_size']}); "
            f"UNet calls per generation on {cost['unet_calls_per_generation_on']} "
            f"vs off {cost['unet_calls_per_generation_off']}"
        )
    lines.append(f"- presence detector accuracy on ground-truth renders: {doc['detector_accuracy']}")
    lines += auto_table(doc)
    path.write_text("\n".join(lines) + "\n")


def auto_table(doc: dict) -> list[str]:
    """Auto mode's settings (``--auto-grid``) against the fixed delays, best by the worst accessory first."""
    if not doc.get("auto"):
        return []
    lines = ["", "Auto mode (score / that accessory's best fixed delay's score; an image switching at k is scored as "]
    lines[-1] += "the fixed delay k):"
    for sampler, study in doc["auto"].items():
        negatives = [k for k in study["settings"][0] if isinstance(study["settings"][0][k], dict)]
        lines += ["", f"{sampler}:", "", "| sensitivity | steps | " + " | ".join(negatives) + " | worst | pooled |"]
        lines.append("|---" * (len(negatives) + 4) + "|")
        for r in sorted(study["settings"], key=lambda r: -r["worst_vs_best_fixed"]):
            cells = [f"{r[n]['vs_best_fixed']:.3f}" for n in negatives]
            lines.append(
                f"| {r['sensitivity']:g} | {r['earliest']}-{r['latest']} | "
                + " | ".join(cells)
                + f" | {r['worst_vs_best_fixed']:.3f} | {r['pooled_vs_best_fixed']:.3f} |"
            )
    return lines


def plot(doc: dict, path: Path) -> None:
    """Curves over the delay: one colour per accessory, solid/dashed per sampler."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    keys = [
        ("removal", "removal success"),
        ("rate", "accessory rate"),
        ("reverse", "reverse activation"),
        ("ssim", "SSIM outside the accessory"),
        ("psnr", "PSNR outside the accessory (dB)"),
        ("score", "score"),
    ]
    styles = ["-", "--", ":", "-."]
    colours = ["#4c72b0", "#dd8452", "#55a868", "#333333"]
    series = [(a, doc["accessories"][a]) for a in doc["accessories"]] + [("pooled", doc["pooled"])]
    fig, axes = plt.subplots(2, 3, figsize=(13, 7))
    for ax, (key, label) in zip(axes.flat, keys, strict=True):
        for (name, res), colour in zip(series, colours, strict=False):
            for r, style in zip(res.values(), styles, strict=False):
                xs = [row["delay"] for row in r["delays"]]
                ys = [math.nan if row[key] is None else row[key] for row in r["delays"]]
                if key == "psnr":  # identical images (delay = steps) sit at the cap: leave them off the curve
                    ys = [math.nan if y >= PSNR_CAP_DB else y for y in ys]
                ax.plot(xs, ys, style, color=colour, marker="o", ms=2, lw=1.6 if name == "pooled" else 1.1)
                if key == "score":
                    ax.plot([r["best_delay"]], [r["best_score"]], "*", color=colour, ms=9)
        ax.set_title(label)
        ax.set_xlabel("delay (steps)")
        ax.grid(alpha=0.3)
    handles = [plt.Line2D([], [], color=c, label=n) for (n, _), c in zip(series, colours, strict=False)]
    handles += [
        plt.Line2D([], [], color="k", ls=st, label=s) for s, st in zip(doc["config"]["samplers"], styles, strict=False)
    ]
    axes.flat[0].legend(handles=handles, fontsize=8)
    c = doc["config"]
    fig.suptitle(
        f"Negative prompt delay on the toy model: {c['cases']} cases per accessory, {c['steps']} steps, CFG "
        f"{c['cfg_scale']:g} (delay 0 = from step 0, delay {c['steps']} = never; * = best score)"
    )
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


def case_config(args: argparse.Namespace, cases: dict, samplers: list[str], model: Any) -> dict:
    """The JSON ``config`` entries that name the cases and how they ran (``add_case_options``' values; shared with
    the studies built on this benchmark)."""
    return {
        "seeds": args.seeds,
        "first_seed": args.first_seed,
        "prompts": {n: cases[n][0] for n in args.negatives},
        "prompt_set": args.prompt_set,
        "pairing": args.pairing,
        "negatives": args.negatives,
        "cfg_scale": args.cfg,
        "samplers": samplers,
        "scheduler": "Automatic",
        "size": "32x32",
        "batch": args.batch,
        "torch_threads": torch.get_num_threads(),
        "memo": not args.no_memo,
        "quick": args.quick,
        "model": model.sd_model_hash,
        "objective": model.config.get("objective", "eps"),
    }


def add_case_options(ap: argparse.ArgumentParser, samplers: str = "Euler,DPM++ 2M") -> None:
    """The options that choose the benchmark's cases (shared by the studies built on them: same meaning, same
    defaults, so their cases are this benchmark's)."""
    ap.add_argument("--seeds", type=int, default=64, help="seeds (= cases) per accessory (default 64)")
    ap.add_argument("--first-seed", type=int, default=0)
    ap.add_argument("--prompts", type=int, default=8, help="number of prompts per accessory (default 8)")
    ap.add_argument("--prompt-seed", type=int, default=1234, help="seed of toy.world.prompts_implying")
    ap.add_argument(
        "--prompt-set",
        choices=["implied", "any"],
        default="implied",
        help="implied (default): each accessory's prompts have its shape, so they imply it; any: the same prompts "
        "for every accessory",
    )
    ap.add_argument("--pairing", choices=["cycle", "cross"], default="cycle")
    ap.add_argument("--negatives", default=",".join(ACCESSORIES), help="comma-separated accessories (default all)")
    ap.add_argument(
        "--model",
        choices=sorted(BUNDLED),
        default="eps",
        help="eps: the bundled model (default); flow: its rectified-flow sibling (Euler/Heun on the shifted schedule)",
    )
    ap.add_argument("--cfg", type=float, default=7.0)
    ap.add_argument("--samplers", default=samplers, help=f"comma-separated WebUI sampler names (default {samplers})")
    ap.add_argument("--batch", type=int, default=64, help="images per generation (default 64)")
    ap.add_argument("--no-memo", action="store_true", help="compute every UNet evaluation")


def build_parser() -> argparse.ArgumentParser:
    """Command-line options."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_case_options(ap)
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--timing-batch", type=int, default=8)
    ap.add_argument("--timing-repeats", type=int, default=7)
    ap.add_argument(
        "--threads",
        type=int,
        default=0,
        help="torch threads (0: torch's default); 1 avoids oversubscription when another process uses the cores",
    )
    ap.add_argument("--out", default=str(ROOT / "bench" / "out"))
    ap.add_argument("--replot", metavar="JSON", help="only rewrite table.md and the plot from a bench_delay.json")
    ap.add_argument("--quick", action="store_true", help="16 seeds, 2 prompts, 3 timing repeats")
    ap.add_argument(
        "--auto-grid",
        default="",
        help='auto mode settings to score against the fixed delays: "S1,S2/L1-H1,L2-H2" (sensitivities x windows of '
        'earliest-latest steps), e.g. "0.1,0.3,0.5,0.7/2-5,4-7,6-9"; default none',
    )
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
    args.auto_settings = parse_auto_grid(args.auto_grid)
    samplers = [s.strip() for s in args.samplers.split(",") if s.strip()]
    args.negatives = [n.strip() for n in args.negatives.split(",") if n.strip()]
    unknown = [n for n in args.negatives if n not in ACCESSORIES]
    if unknown:
        raise SystemExit(f"unknown accessories {unknown}; known: {ACCESSORIES}")
    if args.threads > 0:
        torch.set_num_threads(args.threads)
    import harness
    from tqdm import tqdm

    started = time.perf_counter()
    det_acc = {a: detector_accuracy(n=1024, seed=0, accessory=a) for a in args.negatives}
    det_acc_noisy = {a: detector_accuracy(n=1024, seed=1, noise_std=0.05, accessory=a) for a in args.negatives}
    model, meter = start_stand_in(args.model)
    cases = make_cases(args, model.world_link)
    case_prompts = {n: [p for g in groups for p, _ in g] for n, (_, groups) in cases.items()}

    per_acc: dict[str, dict] = {a: {} for a in args.negatives}
    pooled, cost, checks, memo_stats, auto = {}, [], {}, {}, {}
    generations_per_group = args.steps + 3 + len(args.auto_settings)
    total = len(samplers) * sum(len(groups) for _, groups in cases.values()) * generations_per_group
    with torch.inference_mode():
        for sampler in samplers:
            cost.append(measure_cost(harness, meter, args, sampler))
            print(f"{sampler}: on/off wall-time ratio {cost[-1]['ratio_on_off']:.3f}", flush=True)
        with tqdm(total=total, desc="bench", unit="generation") as bar:
            for sampler in samplers:
                calls0, hits0, t0 = meter.calls, meter.hits, time.perf_counter()
                images = run_delays(harness, meter, args, sampler, cases, bar)
                memo_stats[sampler] = {
                    "unet_calls": meter.calls - calls0,
                    "answered_from_memo": meter.hits - hits0,
                    "seconds": round(time.perf_counter() - t0, 1),
                }
                checks[sampler] = images["checks"]
                outcomes = []
                for a in args.negatives:
                    got = images["negatives"][a]
                    outcomes.append(case_outcomes(got["ref"], got["delayed"], a, args.steps))
                    per_acc[a][sampler] = aggregate(outcomes[-1], case_prompts[a], cases[a][0])
                every = [p for a in args.negatives for p in case_prompts[a]]
                pooled[sampler] = aggregate(pool(outcomes), every, list(dict.fromkeys(every)))
                if args.auto_settings:
                    best = {a: per_acc[a][sampler]["best_score"] for a in args.negatives}
                    best["pooled"] = pooled[sampler]["best_score"]
                    by_neg = dict(zip(args.negatives, outcomes, strict=True))
                    auto[sampler] = auto_study(images["negatives"], by_neg, best)
    doc = {
        "config": {
            **case_config(args, cases, samplers, model),
            "cases": len(case_prompts[args.negatives[0]]),
            "steps": args.steps,
        },
        "definitions": {
            "rate": "toy.presence.accessory_present(image, accessory) on the generated image",
            "removal": "share of cases with the accessory without the negative prompt that have none with it",
            "reverse": "share of cases without the accessory without the negative prompt that have it with it",
            "psnr_ssim": "vs the no-negative image of the same case, outside the union of both images' accessory "
            f"regions (toy.presence.accessory_region); PSNR capped at {PSNR_CAP_DB:g} dB",
            "score": metrics.SCORE_DEFINITION,
            "delay": "0 = negative prompt from step 0 (same as extension off); steps = never applied",
            "pooled": "the cases of every accessory together (cases x accessories)",
        },
        "detector_accuracy": det_acc,
        "detector_accuracy_noise_0.05": det_acc_noisy,
        "detector_ok": all(v >= 0.95 for v in det_acc.values()),
        "checks": checks,
        "memo": memo_stats,
        "cost": cost,
        "accessories": per_acc,
        "pooled": pooled,
        "seconds": round(time.perf_counter() - started, 1),
    }
    if auto:
        doc["auto"] = auto
    doc["targets"] = targets(doc)
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
        and all(all(x.values()) for v in checks.values() for x in v.values())
    )
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
