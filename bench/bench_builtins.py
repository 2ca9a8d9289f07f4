"""Benchmark: this extension's delay against the WebUI's own ways of keeping the negative prompt out early.

    python bench/bench_builtins.py --quick           # 16 seeds, 2 prompts per accessory: to estimate the full run
    python bench/bench_builtins.py                   # 64 seeds, 8 prompts per accessory (the delay benchmark's cases)
    python bench/bench_builtins.py --seeds 32 --samplers Euler,Heun --fractions 0.1,0.2,0.3 --out bench/results

Issue 20's FAQ evidence ("why not the WebUI's built-ins?"). On the bundled toy model, through the WebUI stand-in
and `bench/bench_delay.py`'s harness (`generate`, `make_cases`, `UNetMeter`, `case_outcomes`, `aggregate`, `pool`),
with the delay benchmark's cases (per accessory hat / glasses / stripes: 8 prompts that imply it, 64 seeds, the
accessory as the negative prompt; CFG 7, 20 steps, 32x32, txt2img), for each fraction f of the steps (N = f x steps:
10 / 20 / 30 % -> 2 / 4 / 6) and each sampler (Euler; Heun, two evaluations per step):

- `ext N`, `ext N+1`: this extension, `alwayson_scripts` args [True, N] (and N+1, see below);
- `[:NEG:N]`, `[:NEG:f]`: prompt editing of the whole negative prompt (step number / fraction), extension off;
- `skip f`: the option "Ignore negative prompt during early sampling" (`skip_early_cond` = f), extension off;
- references: no negative prompt; the negative prompt from step 0 (extension off).

Measured per method, fraction and sampler, pooled and per accessory, with bench_delay's definitions: removal (share
of the cases that wear the accessory without the negative and do not with it), SSIM outside the accessory regions
against the no-negative image, and the score (`toy.metrics.SCORE_DEFINITION`); model evaluations per image (UNet
rows per image; one UNet call per denoiser evaluation here, counted by `UNetMeter` in a separate pass with the memo
off, one image per generation), and the uncond each denoiser evaluation got ('e' empty prompt, 'n' the negative,
'-' none). It also checks, with `torch.equal` per image, which built-in gives exactly the extension's image.

Facts of the real WebUI v1.10.1 (commit 82a973c0) this rests on, read in its source (`modules/...`) and, for the
prompt parser, run from that checkout; the stand-in (`webui_standin/modules/...`) models each the same way:

1. Prompt schedules are built over the sampler's *expected evaluation count*, not the step count:
   `processing.py` `StableDiffusionProcessing.setup_conds` passes `total_steps = sampler_config.total_steps(
   self.steps)` to `prompt_parser.get_learned_conditioning` for the negative prompts (`self.uc`), and
   `sd_samplers_common.py` `SamplerData.total_steps` doubles the steps for samplers whose options say
   `second_order` (`sd_samplers_kdiffusion.py` `samplers_k_diffusion`: `('Heun', 'sample_heun', ..., {"second_order":
   True})`). Euler: 20; Heun: 40.
2. `prompt_parser.py` `get_learned_conditioning_prompt_schedules` (`collect_steps`; new timelines, `use_old_scheduling`
   False by default in `shared_options.py`): a number without a dot is a step, `min(steps, int(N))`; a number with a
   dot is a fraction, `int(f * steps)` with the total of fact 1. Run on v1.10.1: `[:NEG:4]` -> `[[4, ''], [20,
   'NEG']]` (Heun `[[4, ''], [40, 'NEG']]`); `[:NEG:0.2]` -> `[[4, ''], [20, 'NEG']]`, Heun `[[8, ''], [40, 'NEG']]`.
3. `sd_samplers_cfg_denoiser.py` `CFGDenoiser.forward` reads the schedules at the evaluation counter:
   `prompt_parser.reconstruct_cond_batch(uncond, self.step)` takes the first entry with `current_step <=
   end_at_step`; `self.step` starts at 0 (`sd_samplers_common.py` `Sampler.initialize`) and `+= 1` at the end of
   every `forward`. So `[:NEG:N]` gives the empty text to evaluations 0..N: N+1 evaluations.
   - Euler (one evaluation per step): steps 0..N, i.e. **the extension's delay N+1, not N** (off by one; `[:NEG:N-1]`
     is delay N). Measured below: bit-identical to `ext N+1` on the toy model.
   - Heun (k-diffusion `sample_heun`: an evaluation at sigma_i, then one at sigma_(i+1) except in the last step, so
     2 x 20 - 1 = 39 evaluations; evaluations 2k and 2k+1 are step k): `[:NEG:N]` (N even) switches after N/2 steps
     and one evaluation: steps 0..N/2-1 and the first (predictor) evaluation of step N/2 get the empty text.
     `[:NEG:f]` covers evaluations 0..2N (it is `[:NEG:2N]`): steps 0..N-1 and the first evaluation of step N,
     between the extension's delays N and N+1. An even step number never equals a delay (the two evaluations of one
     Heun step get different unconds); an odd one, `[:NEG:2k-1]`, is exactly the extension's delay k.
4. "Ignore negative prompt during early sampling": `shared_options.py` `skip_early_cond` (0.0 by default, infotext
   "Skip Early CFG"). In `CFGDenoiser.forward`, after `cfg_denoiser_callback`: `if shared.opts.skip_early_cond !=
   0. and self.step / self.total_steps <= shared.opts.skip_early_cond: skip_uncond = True`, with `self.total_steps =
   self.config.total_steps(steps)` (`Sampler.launch_sampling`; 20 Euler, 40 Heun). The condition is inclusive:
   f = 0.2 covers evaluations 0..4 with Euler (steps 0..4, five steps) and 0..8 with Heun (steps 0..3 and the first
   evaluation of step 4). Such an evaluation drops the uncond rows (`x_in[:-batch_size]`), runs the model on the
   cond rows alone (`cond_in = tensor`), appends each image's first cond output as a fake uncond and combines with
   scale 1.0 (`combine_denoised(x_out, conds_list, uncond, 1.0)`): the result is the cond prediction alone. No
   guidance at all in those evaluations: neither the negative nor the empty prompt, CFG scale 7 ignored. It saves one
   model row per image per skipped evaluation.
5. Not benchmarked, from the source: on SDXL `[:NEG:N]`'s empty part is encoded in one batch with NEG and
   `sd_models_xl.py` `get_learned_conditioning` zeroes the text embeddings only when every text of the batch is
   empty (`force_zero_negative_prompt = is_negative_prompt and all(x == '' for x in batch)`), so the early uncond is
   the encoded "" where an empty negative prompt (and this extension) gets zeros: no equality there even with Euler.
   The toy model's text encoder encodes "" alone and in a batch with NEG bit-identically (hence the equality with
   Euler); whether an SD1 CLIP does so across batch sizes was not checked here.

Speed-up (exact, `bench_delay.UNetMeter`): the reference and the `[:NEG:N]` runs are stored; other runs' evaluations
that feed the UNet exactly the same inputs are answered from the memo (`--no-memo` turns it off).

Writes <out>/bench_builtins.json and <out>/bench_builtins.png; prints the pooled table.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
import bench_delay as bd  # noqa: E402  (also puts the stand-in and the repository root on sys.path)

ROOT = bd.ROOT
KINDS = ("reference", "extension", "prompt_editing_steps", "prompt_editing_fraction", "skip_early_cond")
"""The kinds of method, in the order the table shows them."""


@dataclass(frozen=True)
class Method:
    """One way of generating a case's image."""

    key: str
    """unique name, e.g. "ext 4", "[:NEG:4]", "[:NEG:0.2]", "skip 0.2", "no negative", "from step 0"."""
    kind: str
    """one of KINDS."""
    fraction: float | None
    """the fraction of the steps this method stands for (None for the references)."""
    negative: str
    """the negative prompt, NEG standing for the accessory."""
    ext: tuple[bool, int]
    """the extension's `alwayson_scripts` args (enabled, delay)."""
    skip_early_cond: float = 0.0
    """the option "Ignore negative prompt during early sampling" during this run."""
    stored: bool = False
    """whether the memo keeps this run's UNet results (the reference and `[:NEG:N]`, which others repeat)."""

    def negative_for(self, accessory: str) -> str:
        """The negative prompt of this method for one accessory."""
        return self.negative.replace("NEG", accessory)


def delay_of(fraction: float, steps: int) -> int:
    """The step count N that a fraction of `steps` stands for (rounded)."""
    return int(round(fraction * steps))


def make_methods(fractions: list[float], steps: int) -> list[Method]:
    """The references, then per fraction f (N = delay_of(f)): `[:NEG:N]` first (stored, so that `ext N+1` can be
    answered from it with Euler), then `ext N`, `ext N+1`, `[:NEG:f]` and `skip f`; each key once."""
    out = [
        Method("no negative", "reference", None, "", (False, 0), stored=True),
        Method("from step 0", "reference", None, "NEG", (False, 0)),
    ]
    for f in fractions:
        n = delay_of(f, steps)
        out.append(Method(f"[:NEG:{n}]", "prompt_editing_steps", f, f"[:NEG:{n}]", (False, 0), stored=True))
    for f in fractions:
        n = delay_of(f, steps)
        out += [
            Method(f"ext {n}", "extension", f, "NEG", (True, n)),
            Method(f"ext {n + 1}", "extension", f, "NEG", (True, n + 1)),
            Method(f"[:NEG:{f!r}]", "prompt_editing_fraction", f, f"[:NEG:{f!r}]", (False, 0)),
            Method(f"skip {f!r}", "skip_early_cond", f, "NEG", (False, 0), skip_early_cond=f),
        ]
    unique: dict[str, Method] = {}
    for m in out:  # fractions one step apart share an `ext` run (N+1 of one is N of the next): keep the first
        unique.setdefault(m.key, m)
    return list(unique.values())


class RowCounter:
    """Wraps `model.apply_model` (on top of `bench_delay.UNetMeter`): counts the rows the model is asked for (memo
    hits included) and, while `trace` is a list, appends per call the kind of its uncond rows: 'e' the empty prompt,
    'n' the negative prompt (per `known`), '-' no uncond rows (only the cond rows), '?' anything else. The
    classification assumes one image per generation without AND (row 0 cond, row 1 uncond)."""

    def __init__(self, model: Any) -> None:
        self.inner = model.apply_model
        self.rows = 0
        self.trace: list[str] | None = None
        self.known: dict[str, torch.Tensor] = {}
        model.apply_model = self

    def _kind(self, x: torch.Tensor, cond: Any) -> str:
        if x.shape[0] == 1:
            return "-"
        ctx = cond["c_crossattn"][0] if isinstance(cond, dict) else cond
        for name, enc in self.known.items():
            if ctx.shape[1:] == enc.shape[1:] and torch.allclose(ctx[1:2], enc, atol=1e-5):
                return name
        return "?"

    def __call__(self, *args: Any, **kwargs: Any) -> torch.Tensor:
        x = args[0]
        self.rows += int(x.shape[0])
        if self.trace is not None:
            self.trace.append(self._kind(x, kwargs["cond"] if "cond" in kwargs else args[2]))
        return self.inner(*args, **kwargs)


def run_method(
    harness: Any, method: Method, accessory: str, prompts: list[str], seed: int, args: argparse.Namespace, sampler: str
) -> torch.Tensor:
    """One txt2img of `method` (bench_delay.generate), with its skip_early_cond option set for the run only."""
    from modules import shared

    shared.opts.skip_early_cond = method.skip_early_cond
    try:
        return bd.generate(harness, prompts, method.negative_for(accessory), seed, args, sampler, list(method.ext))
    finally:
        shared.opts.skip_early_cond = 0.0


def count_evaluations(
    harness: Any,
    model: Any,
    meter: bd.UNetMeter,
    counter: RowCounter,
    methods: list[Method],
    args: argparse.Namespace,
    sampler: str,
    accessory: str,
    prompt: str,
) -> dict[str, dict]:
    """Per method, one image, memo off: UNet calls per generation (`UNetMeter.calls`), UNet rows per image and the
    uncond of every denoiser evaluation ('e', 'n', '-'; for Heun the evaluations of one step are grouped, '|' between
    steps)."""
    meter.memo_on = False
    counter.known = {
        "e": model.get_learned_conditioning([""]).detach(),
        "n": model.get_learned_conditioning([accessory]).detach(),
    }
    out = {}
    for m in methods:
        calls0, rows0 = meter.calls, counter.rows
        counter.trace = []
        run_method(harness, m, accessory, [prompt], args.first_seed, args, sampler)
        trace, counter.trace = counter.trace, None
        out[m.key] = {
            "unet_calls_per_generation": meter.calls - calls0,
            "unet_rows_per_image": counter.rows - rows0,
            "uncond_per_evaluation": group_by_step(trace, sampler, args.steps),
        }
    return out


def group_by_step(trace: list[str], sampler: str, steps: int) -> str:
    """The per-evaluation trace as text; a second-order sampler's two evaluations per step are grouped ("ee|en|nn")."""
    if len(trace) != 2 * steps - 1:
        return "".join(trace)
    return "|".join("".join(trace[2 * k : 2 * k + 2]) for k in range(steps))


def equal_images(a: torch.Tensor, b: torch.Tensor) -> int:
    """How many images of two batches are bit-identical (torch.equal per image)."""
    return sum(bool(torch.equal(x, y)) for x, y in zip(a, b, strict=True))


EQUALITY_PAIRS = (
    ("[:NEG:N] = ext N", "[:NEG:{n}]", "ext {n}"),
    ("[:NEG:N] = ext N+1", "[:NEG:{n}]", "ext {n1}"),
    ("[:NEG:f] = ext N", "[:NEG:{f}]", "ext {n}"),
    ("[:NEG:f] = ext N+1", "[:NEG:{f}]", "ext {n1}"),
    ("[:NEG:f] = [:NEG:N]", "[:NEG:{f}]", "[:NEG:{n}]"),
    ("skip f = ext N", "skip {f}", "ext {n}"),
    ("skip f = ext N+1", "skip {f}", "ext {n1}"),
)


def equalities(images: dict[str, torch.Tensor], fractions: list[float], steps: int) -> dict[str, dict]:
    """Per fraction: for each pair of EQUALITY_PAIRS the number of bit-identical images out of all cases."""
    out = {}
    for f in fractions:
        n = delay_of(f, steps)
        names = {"n": n, "n1": n + 1, "f": repr(f)}
        row = {}
        for label, a, b in EQUALITY_PAIRS:
            x, y = images[a.format(**names)], images[b.format(**names)]
            row[label] = {"identical": equal_images(x, y), "of": len(x)}
        out[repr(f)] = row
    return out


ROW_KEYS = ("rate", "removal", "removed", "present_without_negative", "reverse", "ssim", "psnr", "score", "score_sem")


def summarize(outcomes: dict, case_prompts: list[str], prompts: list[str], methods: list[Method]) -> dict[str, dict]:
    """bench_delay.aggregate over the methods (its "delay" index is the method's index) -> per method key a row."""
    agg = bd.aggregate(outcomes, case_prompts, prompts)
    return {m.key: {k: row[k] for k in ROW_KEYS} for m, row in zip(methods, agg["delays"], strict=True)}


def run_sampler(
    harness: Any,
    meter: bd.UNetMeter,
    counter: RowCounter,
    methods: list[Method],
    args: argparse.Namespace,
    sampler: str,
    cases: dict,
    bar: Any,
) -> dict:
    """All generations of one sampler; results per accessory and pooled, equalities, rows per image, memo use."""
    per_acc, outcomes, eq = {}, [], {}
    rows_per_image: dict[str, set[float]] = {m.key: set() for m in methods}
    calls0, hits0, t0 = meter.calls, meter.hits, time.perf_counter()
    for acc in args.negatives:
        got: dict[str, list[torch.Tensor]] = {m.key: [] for m in methods}
        for group in cases[acc][1]:
            prompts = [p for p, _ in group]
            meter.memo.clear()
            meter.memo_on = not args.no_memo
            for m in methods:
                meter.store = m.stored
                rows0 = counter.rows
                got[m.key].append(run_method(harness, m, acc, prompts, group[0][1], args, sampler))
                rows_per_image[m.key].add((counter.rows - rows0) / len(prompts))
                bar.update(1)
            meter.memo.clear()
            meter.memo_on = meter.store = False
        images = {k: torch.cat(v) for k, v in got.items()}
        eq[acc] = equalities(images, args.fractions, args.steps)
        ordered = {i: images[m.key] for i, m in enumerate(methods)}
        outcomes.append(bd.case_outcomes(images["no negative"], ordered, acc, len(methods) - 1))
        case_prompts = [p for g in cases[acc][1] for p, _ in g]
        per_acc[acc] = summarize(outcomes[-1], case_prompts, cases[acc][0], methods)
    every = [p for a in args.negatives for g in cases[a][1] for p, _ in g]
    pooled = summarize(bd.pool(outcomes), every, list(dict.fromkeys(every)), methods)
    pooled_eq = {
        f: {
            label: {k: sum(eq[a][f][label][k] for a in args.negatives) for k in ("identical", "of")}
            for label in eq[args.negatives[0]][f]
        }
        for f in eq[args.negatives[0]]
    }
    return {
        "pooled": pooled,
        "accessories": per_acc,
        "equalities": pooled_eq,
        "equalities_per_accessory": eq,
        "unet_rows_per_image_main_run": {k: sorted(v) for k, v in rows_per_image.items()},
        "memo": {
            "unet_calls": meter.calls - calls0,
            "answered_from_memo": meter.hits - hits0,
            "seconds": round(time.perf_counter() - t0, 1),
        },
    }


def headline(doc: dict) -> list[dict]:
    """Pooled rows per sampler x fraction x method (and the references once per sampler)."""
    rows = []
    shown = sorted(doc["methods"], key=lambda m: (m["fraction"] or -1.0, KINDS.index(m["kind"])))
    for sampler, res in doc["results"].items():
        ev = doc["evaluations"][sampler]
        for m in shown:
            r = res["pooled"][m["key"]]
            rows.append(
                {
                    "sampler": sampler,
                    "fraction": m["fraction"],
                    "method": m["key"],
                    "kind": m["kind"],
                    "removal": r["removal"],
                    "ssim_outside": r["ssim"],
                    "score": r["score"],
                    "evaluations_per_image": ev[m["key"]]["unet_rows_per_image"],
                }
            )
    return rows


def _f(x: float | None, nd: int = 3) -> str:
    return "–" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x:.{nd}f}"


def table(doc: dict) -> str:
    """The pooled headline as markdown, with the score per accessory and the identical-image counts."""
    accs = doc["config"]["negatives"]
    head = "| sampler | f | method | removal | SSIM outside | score | " + " | ".join(accs) + " | evals/image |"
    lines = [head, "|---|---:|---|---:|---:|---:|" + "---:|" * len(accs) + "---:|"]
    for row in doc["headline"]:
        res = doc["results"][row["sampler"]]
        per = " | ".join(_f(res["accessories"][a][row["method"]]["score"]) for a in accs)
        frac = "–" if row["fraction"] is None else f"{row['fraction']:g}"
        lines.append(
            f"| {row['sampler']} | {frac} | {row['method']} | {_f(row['removal'])} | {_f(row['ssim_outside'])} | "
            f"{_f(row['score'])} | {per} | {row['evaluations_per_image']} |"
        )
    lines.append("")
    for sampler, res in doc["results"].items():
        for f, pairs in res["equalities"].items():
            same = ", ".join(f"{k} {v['identical']}/{v['of']}" for k, v in pairs.items())
            lines.append(f"- {sampler}, f = {f}: identical images {same}")
    return "\n".join(lines)


def _identical_note(doc: dict, sampler: str) -> str:
    """ " ([:NEG:N] = ext N+1, bit-identical)" when that holds for every case and fraction of `sampler`, else ""."""
    pairs = [
        p[k]
        for p in doc["results"][sampler]["equalities"].values()
        for k in ("[:NEG:N] = ext N+1", "[:NEG:f] = ext N+1")
    ]
    return " ([:NEG:N] = [:NEG:f] = ext N+1, bit-identical)" if all(p["identical"] == p["of"] for p in pairs) else ""


def plot(doc: dict, path: Path) -> None:
    """Score, removal and SSIM outside (pooled) over the fraction: one line per method, one column per sampler."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    samplers = list(doc["results"])
    fractions = doc["config"]["fractions"]
    steps = doc["config"]["steps"]
    series = [
        ("extension, delay N", lambda f: f"ext {delay_of(f, steps)}", "#4c72b0", "o", "-"),
        ("extension, delay N+1", lambda f: f"ext {delay_of(f, steps) + 1}", "#4c72b0", "o", ":"),
        ("prompt editing [:NEG:N]", lambda f: f"[:NEG:{delay_of(f, steps)}]", "#dd8452", "s", "-"),
        ("prompt editing [:NEG:f]", lambda f: f"[:NEG:{f!r}]", "#c44e52", "^", "--"),
        ("skip_early_cond = f", lambda f: f"skip {f!r}", "#55a868", "x", "-"),
    ]
    refs = [("no negative", "#777777", "--"), ("from step 0", "#000000", "-.")]
    keys = [("score", "score"), ("removal", "removal"), ("ssim", "SSIM outside the accessory")]
    fig, axes = plt.subplots(len(keys), len(samplers), figsize=(5.5 * len(samplers), 9), squeeze=False)
    xs = [100 * f for f in fractions]
    for col, sampler in enumerate(samplers):
        pooled = doc["results"][sampler]["pooled"]
        for row, (key, label) in enumerate(keys):
            ax = axes[row][col]
            for name, key_of, colour, marker, style in series:
                ys = [pooled[key_of(f)][key] for f in fractions]
                ax.plot(xs, [math.nan if y is None else y for y in ys], style, color=colour, marker=marker, label=name)
            for name, colour, style in refs:
                y = pooled[name][key]
                if y is not None:
                    ax.axhline(y, color=colour, ls=style, lw=1, label=name)
            ax.set_xticks(xs)
            ax.set_xlabel(f"fraction of {steps} steps (%), N = {', '.join(str(delay_of(f, steps)) for f in fractions)}")
            ax.set_title(f"{sampler}: {label}{_identical_note(doc, sampler) if row == 0 else ''}", fontsize=10)
            ax.grid(alpha=0.3)
    handles, labels = axes[0][0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncol=4, fontsize=8, frameon=False)
    c = doc["config"]
    fig.suptitle(
        f"Delay vs WebUI built-ins on the toy model: {c['cases']} cases x {len(c['negatives'])} accessories pooled, "
        f"{c['steps']} steps, CFG {c['cfg_scale']:g}"
    )
    fig.tight_layout(rect=(0, 0.05, 1, 1))
    fig.savefig(path, dpi=90)
    plt.close(fig)


def build_parser() -> argparse.ArgumentParser:
    """Command-line options (the case options have bench_delay's meaning and defaults)."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    bd.add_case_options(ap, samplers="Euler,Heun")
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--fractions", default="0.1,0.2,0.3", help="fractions of the steps (default 0.1,0.2,0.3)")
    ap.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")
    ap.add_argument("--note", default="", help="free text stored in the JSON's config (e.g. why fewer seeds)")
    ap.add_argument("--out", default=str(ROOT / "bench" / "results"))
    ap.add_argument("--quick", action="store_true", help="16 seeds, 2 prompts per accessory")
    ap.add_argument("--replot", metavar="JSON", help="only redraw the plot into --out and print the table")
    return ap


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark; returns the exit code (1 when the evaluation counts of the two passes disagree)."""
    args = build_parser().parse_args(argv)
    if args.replot:
        doc = json.loads(Path(args.replot).read_text())
        doc["headline"] = headline(doc)
        Path(args.out).mkdir(parents=True, exist_ok=True)
        plot(doc, Path(args.out) / "bench_builtins.png")
        print(table(doc))
        return 0
    if args.quick:
        args.seeds, args.prompts = 16, 2
    samplers = [s.strip() for s in args.samplers.split(",") if s.strip()]
    args.negatives = [n.strip() for n in args.negatives.split(",") if n.strip()]
    args.fractions = [float(f) for f in args.fractions.split(",") if f.strip()]
    unknown = [n for n in args.negatives if n not in bd.ACCESSORIES]
    if unknown:
        raise SystemExit(f"unknown accessories {unknown}; known: {bd.ACCESSORIES}")
    if args.threads > 0:
        torch.set_num_threads(args.threads)
    import harness
    from tqdm import tqdm

    started = time.perf_counter()
    model, meter = bd.start_stand_in()
    counter = RowCounter(model)
    methods = make_methods(args.fractions, args.steps)
    cases = bd.make_cases(args, model.world_link)
    total = len(samplers) * len(methods) * sum(len(g) for _, g in cases.values())
    results, evaluations = {}, {}
    first = args.negatives[0]
    with torch.inference_mode():
        for sampler in samplers:
            evaluations[sampler] = count_evaluations(
                harness, model, meter, counter, methods, args, sampler, first, cases[first][0][0]
            )
        with tqdm(total=total, desc="bench", unit="generation") as bar:
            for sampler in samplers:
                results[sampler] = run_sampler(harness, meter, counter, methods, args, sampler, cases, bar)
    counts_agree = all(
        results[s]["unet_rows_per_image_main_run"][m.key] == [evaluations[s][m.key]["unet_rows_per_image"]]
        for s in samplers
        for m in methods
    )
    doc = {
        "config": {
            **bd.case_config(args, cases, samplers, model),
            "cases": len([1 for g in cases[first][1] for _ in g]),
            "steps": args.steps,
            "fractions": args.fractions,
            "delays": [delay_of(f, args.steps) for f in args.fractions],
            "note": args.note,
        },
        "definitions": {
            "removal": "share of the cases with the accessory without the negative prompt that have none with it "
            "(bench_delay)",
            "ssim": "SSIM vs the no-negative image of the same case, outside both images' accessory regions",
            "score": bd.metrics.SCORE_DEFINITION,
            "evaluations_per_image": "UNet rows per image per generation (cond + uncond rows; one UNet call per "
            "denoiser evaluation), counted with the memo off on one image, and again (memo hits included) in the "
            "main run",
            "uncond_per_evaluation": "per denoiser evaluation the uncond the UNet got: e = empty prompt, n = the "
            "negative prompt, - = no uncond row (cond alone); Heun's two evaluations per step grouped, | between steps",
            "equalities": "bit-identical images (torch.equal per image) out of all cases",
            "methods": "ext N: this extension, delay N; [:NEG:N] / [:NEG:f]: prompt editing of the whole negative, "
            "extension off; skip f: option skip_early_cond = f, extension off; no negative; from step 0: the "
            "negative prompt as usual, extension off",
        },
        "methods": [{**asdict(m), "ext": list(m.ext)} for m in methods],
        "evaluations": evaluations,
        "evaluation_counts_agree": counts_agree,
        "results": results,
        "seconds": round(time.perf_counter() - started, 1),
    }
    doc["headline"] = headline(doc)
    doc = bd._clean(doc)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "bench_builtins.json").write_text(json.dumps(doc, indent=1) + "\n")
    plot(doc, out / "bench_builtins.png")
    print(table(doc))
    print(f"memo: {json.dumps({s: r['memo'] for s, r in results.items()})}; {doc['seconds']} s")
    return 0 if counts_agree else 1


if __name__ == "__main__":
    sys.exit(main())
