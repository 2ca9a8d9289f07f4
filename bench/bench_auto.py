"""Which signal finds the critical step? Evaluates three detector signals against fixed delays and the oracle.

    .venv/bin/python bench/bench_auto.py [--seeds 32] [--steps 10] [--out bench/out]

Method. Before an image switches to the real negative prompt its trajectory is exactly the one with the
empty negative, so a detector that switches at step k produces the image of a fixed delay k. One sweep
over every fixed delay 0..steps gives each case's outcome at every step; one extra run with the negative
never applied records each signal per step; a detector's result is then a lookup.

Score per case (one number combining removal and preservation):
    score = 0.5 * [no hat in the image] + 0.5 * SSIM outside the hat region (vs the no-negative image)
The oracle takes each case's best fixed delay; "best fixed" is the single delay with the best mean.

Signals (all per image, evaluated at the first evaluation of each step):
  a. alignment: cosine(x0_neg - x0_empty, x0_pos - x0_empty); needs the negative branch evaluated
     (one extra UNet evaluation per image per step until the switch). Switch when >= tau.
  b. cross-attention probe: attention of the positive pass's image queries to the negative prompt's
     "hat" token keys (hooked cross-attention projections); concentration = share of that map's mass in
     its top 10 % pixels. Switch when >= tau.
  c. x0 stabilisation: relative change of the positive x0 prediction between steps (the shipped
     default; free). Switch when <= tau.
Thresholds are tuned on one prompt half and scored on the other (2-fold), so the figures are
out-of-sample.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "webui_standin")]

import harness  # noqa: E402
from modules import script_callbacks  # noqa: E402

from lib_negative_delay import TITLE  # noqa: E402
from lib_negative_delay.detector import relative_change, threshold_for  # noqa: E402
from lib_negative_delay.toy import presence  # noqa: E402
from lib_negative_delay.toy.model import ToyLDM  # noqa: E402

PROMPTS = [
    "red circle on blue background",
    "green square on black background",
    "yellow triangle on gray background",
    "purple circle on green background",
]
NEGATIVE = "hat"


def ssim_outside(a: torch.Tensor, b: torch.Tensor, region: torch.Tensor) -> torch.Tensor:
    """Per-image SSIM (3x3 box windows, images in 0..1) averaged over pixels outside ``region``."""
    import torch.nn.functional as F

    c1, c2 = 0.01**2, 0.03**2
    pool = lambda t: F.avg_pool2d(t, 3, 1, 1, count_include_pad=False)
    mu_a, mu_b = pool(a), pool(b)
    var_a = pool(a * a) - mu_a**2
    var_b = pool(b * b) - mu_b**2
    cov = pool(a * b) - mu_a * mu_b
    s = ((2 * mu_a * mu_b + c1) * (2 * cov + c2)) / ((mu_a**2 + mu_b**2 + c1) * (var_a + var_b + c2))
    keep = (~region).float().unsqueeze(1)
    return (s * keep).sum(dim=(1, 2, 3)) / (keep.sum(dim=(1, 2, 3)) * 3).clamp_min(1)


class SignalRecorder:
    """Records signals a/b/c at the first evaluation of each step of a never-applied run."""

    def __init__(self, model: ToyLDM, batch: int) -> None:
        self.model = model
        self.batch = batch
        self.neg_context: torch.Tensor | None = None
        self.hat_token = 1  # "<bos> hat <eos> ...": the negative prompt's only word
        self.probe: list[torch.Tensor] = []
        self.rows: dict[str, list[torch.Tensor]] = {"a": [], "b": [], "c": []}
        self.previous_x0: torch.Tensor | None = None
        self.capture = False
        self._hooks = []

    def attach(self) -> None:
        for module in self.model.modules():
            if type(module).__name__ == "SpatialTransformer":
                self._hooks.append(module.attn2.register_forward_hook(self._attn_hook))

    def detach(self) -> None:
        for h in self._hooks:
            h.remove()

    def _attn_hook(self, module, inputs, output) -> None:  # noqa: ANN001
        x = inputs[0]
        if not self.capture or self.neg_context is None or x.shape[0] != self.batch:
            return
        b, n, c = x.shape
        h = module.heads
        q = module.to_q(x).view(b, n, h, c // h).transpose(1, 2)
        k = module.to_k(self.neg_context.expand(b, -1, -1)).view(b, -1, h, c // h).transpose(1, 2)
        attn = torch.softmax(q @ k.transpose(-1, -2) / (c // h) ** 0.5, dim=-1)[..., self.hat_token].mean(1)
        mass = attn / attn.sum(dim=1, keepdim=True)
        top = mass.topk(max(1, n // 10), dim=1).values.sum(dim=1)
        self.probe.append(top)

    def __call__(self, params) -> None:  # on_cfg_denoiser, runs after the extension's callback
        denoiser = params.denoiser
        if denoiser.step == 0:
            self.previous_x0 = None
        b = self.batch
        x, sigma = params.x[:b], params.sigma[:b]
        with torch.no_grad():
            inner = denoiser.inner_model
            x0_neg = inner(x, sigma, cond={"c_crossattn": [self.neg_context.expand(b, -1, -1)]})
            self.probe.clear()
            self.capture = True
            x0_pos = inner(x, sigma, cond={"c_crossattn": [params.text_cond[:b]]})
            self.capture = False
            x0_empty = inner(x, sigma, cond={"c_crossattn": [params.text_uncond[:b]]})
        d_neg = (x0_neg - x0_empty).flatten(1)
        d_pos = (x0_pos - x0_empty).flatten(1)
        self.rows["a"].append(torch.nn.functional.cosine_similarity(d_neg, d_pos, dim=1))
        self.rows["b"].append(torch.stack(self.probe).mean(0) if self.probe else torch.zeros(b))
        change = (
            torch.full((b,), float("inf")) if self.previous_x0 is None else relative_change(self.previous_x0, x0_pos)
        )
        self.rows["c"].append(change)
        self.previous_x0 = x0_pos


def detect(signal: torch.Tensor, tau: float, higher: bool, low: int, high: int) -> torch.Tensor:
    """First step in [low, high] where the signal passes tau (else high); signal is [steps, cases]."""
    steps, cases = signal.shape
    out = torch.full((cases,), high, dtype=torch.long)
    for i in range(cases):
        for k in range(low, min(high, steps)):
            v = float(signal[k, i])
            if v == v and ((v >= tau) if higher else (v <= tau)):
                out[i] = k
                break
    return out


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seeds", type=int, default=32)
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--prompts", type=int, default=4)
    ap.add_argument("--sampler", default="Euler")
    ap.add_argument("--out", default=str(ROOT / "bench" / "out"))
    args = ap.parse_args(argv)
    torch.manual_seed(0)
    out_dir = Path(args.out)
    out_dir.mkdir(parents=True, exist_ok=True)

    model = ToyLDM.load()
    harness.start(str(ROOT), model)
    steps, n = args.steps, args.seeds
    low, high = 1, max(2, (steps * 6) // 10)
    base = dict(steps=steps, sampler_name=args.sampler, width=32, height=32, batch_size=n, seed=1000, cfg_scale=7.0)
    prompts = PROMPTS[: args.prompts]

    scores, present, ssims, signals = [], [], [], {"a": [], "b": [], "c": []}
    timing = {"off": 0.0, "c": 0.0}
    for prompt in prompts:
        ref = torch.stack(harness.txt2img(prompt=prompt, negative_prompt="", **base).images)
        ref_region = presence.accessory_region(ref * 2 - 1)
        per_delay_score, per_delay_present, per_delay_ssim = [], [], []
        for delay in range(steps + 1):
            t0 = time.perf_counter()
            imgs = torch.stack(
                harness.txt2img(
                    prompt=prompt, negative_prompt=NEGATIVE, **base, alwayson_scripts={TITLE: {"args": [True, delay]}}
                ).images
            )
            if delay == steps // 2:
                timing["off"] += time.perf_counter() - t0
            has = presence.accessory_present(imgs * 2 - 1)
            region = ref_region | presence.accessory_region(imgs * 2 - 1)
            s = ssim_outside(imgs, ref, region)
            per_delay_present.append(has)
            per_delay_ssim.append(s)
            per_delay_score.append(0.5 * (~has).float() + 0.5 * s)
        scores.append(torch.stack(per_delay_score))  # [steps+1, n]
        present.append(torch.stack(per_delay_present))
        ssims.append(torch.stack(per_delay_ssim))
        # the product's own auto mode (signal c), timed against a fixed delay of the same run length
        t0 = time.perf_counter()
        harness.txt2img(
            prompt=prompt,
            negative_prompt=NEGATIVE,
            **base,
            alwayson_scripts={TITLE: {"args": [True, steps // 2, True, 0.5, low, high]}},
        )
        timing["c"] += time.perf_counter() - t0
        # one never-applied run with the signal recorder
        rec = SignalRecorder(model, n)
        rec.neg_context = model.get_learned_conditioning([NEGATIVE])
        rec.attach()
        script_callbacks.on_cfg_denoiser(rec)
        harness.txt2img(
            prompt=prompt, negative_prompt=NEGATIVE, **base, alwayson_scripts={TITLE: {"args": [True, steps]}}
        )
        rec.detach()
        script_callbacks.callback_map["callbacks_cfg_denoiser"][:] = [
            c for c in script_callbacks.callback_map["callbacks_cfg_denoiser"] if c.callback is not rec
        ]
        for key in signals:
            rows = torch.stack(rec.rows[key])  # [steps, n], measured at the step's own x
            if key in ("b", "c"):
                # b and c come out of the step's own UNet call, after the uncond had to be chosen: in a real
                # sampler they are known one step later (the shipped detector reads the previous x0)
                rows = torch.cat([torch.full_like(rows[:1], float("nan")), rows[:-1]])
            signals[key].append(rows)

    scores_t = torch.stack(scores)  # [prompts, steps+1, n]
    mean_by_delay = scores_t.mean(dim=(0, 2))
    best_fixed = int(mean_by_delay.argmax())
    oracle = scores_t.max(dim=1).values.mean()
    best_fixed_score = mean_by_delay[best_fixed]

    grids = {
        "a": ([x / 20 for x in range(-10, 21)], True),
        "b": ([0.1 + x / 40 for x in range(0, 37)], True),
        "c": ([threshold_for(s / 20) for s in range(21)], False),
    }
    halves = [list(range(0, len(prompts), 2)), list(range(1, len(prompts), 2))]
    results = {}
    for key, (taus, higher) in grids.items():

        def mean_score(tau: float, idx: list[int], key=key, higher=higher) -> float:
            total = []
            for p in idx:
                chosen = detect(signals[key][p], tau, higher, low, high)
                total.append(scores_t[p].gather(0, chosen.unsqueeze(0)).squeeze(0))
            return float(torch.cat(total).mean())

        out_of_sample, chosen_taus = [], []
        for train, test in ((halves[0], halves[1]), (halves[1], halves[0])):
            tau = max(taus, key=lambda t, train=train: mean_score(t, train))
            chosen_taus.append(tau)
            out_of_sample.append(mean_score(tau, test) * len(test))
        score = sum(out_of_sample) / len(prompts)
        mean_step = sum(
            float(detect(signals[key][p], t, higher, low, high).float().mean())
            for p, t in zip(range(len(prompts)), [chosen_taus[i % 2] for i in range(len(prompts))], strict=True)
        ) / len(prompts)
        results[key] = {
            "mean_switch_step": round(mean_step, 2),
            "score": round(score, 4),
            "vs_oracle": round(score / float(oracle), 4),
            "vs_best_fixed": round(score / float(best_fixed_score), 4),
            "taus": [round(t, 4) for t in chosen_taus],
        }
    extra_evals = {
        "a": f"1 per image per step until the switch: +{results['a']['mean_switch_step'] / steps * 50:.1f} % UNet work",
        "b": "0 (projections of the existing cross-attention calls)",
        "c": "0",
    }
    report = {
        "config": {
            "seeds": n,
            "prompts": prompts,
            "negative": NEGATIVE,
            "steps": steps,
            "sampler": args.sampler,
            "bounds": [low, high],
            "score": "0.5*[no hat] + 0.5*SSIM outside hat region",
        },
        "mean_score_by_delay": [round(float(x), 4) for x in mean_by_delay],
        "hat_rate_by_delay": [round(float(torch.stack(present)[:, d].float().mean()), 4) for d in range(steps + 1)],
        "best_fixed_delay": best_fixed,
        "best_fixed_score": round(float(best_fixed_score), 4),
        "oracle_score": round(float(oracle), 4),
        "signals": results,
        "extra_unet_evaluations": extra_evals,
        "time_ratio_auto_c_vs_fixed": round(timing["c"] / timing["off"], 4),
    }
    (out_dir / "bench_auto.json").write_text(json.dumps(report, indent=2))
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
