"""Collect per-case outcomes and per-step detector signals for the auto-detection study (writes a .pt file).

    .venv/bin/python bench/auto_collect.py [--prompts 8] [--seeds 16] [--steps 20] [--out bench/out/auto_cases.pt]

For every accessory of the toy world as the negative prompt, and every (prompt, seed) case of prompts that imply it
(`toy.world.prompts_implying`: they contain a shape of the colour it goes with and never name it), it stores:
  - the outcome of every fixed delay 0..steps: accessory present, SSIM outside the accessory region (vs. the
    no-negative image) and the benchmark score (`metrics.case_score`); delay == steps means "never switched";
  - per step k of the trajectory that still uses the empty negative (identical, up to step k, to the trajectory
    of every delay >= k), the candidate signals measured at step k's own x:
      a_cos   cosine(x0_neg - x0_empty, x0_pos - x0_empty)                       (needs the negative evaluated)
      a_gain  <x0_pos - x0_empty, x0_neg - x0_empty> / |x0_neg - x0_empty|^2     (needs the negative evaluated)
      b_mean  mean attention probability from the positive pass's queries to the negative prompt's word tokens
      b_conc  share of that attention map's mass in its top 10 % pixels
      c       relative change of the positive x0 since step k-1 (inf at k = 0)
      w       accessory pixels in the positive x0 (toy-only reference: reads the picture itself)
An image that switches at step k produces exactly the image of a fixed delay k, so a detector's result is a
lookup into the stored outcomes (`bench/bench_auto.py`). The model's evaluations are memoised as in the delay
benchmark (`bench_delay.UNetMeter`): a delayed run's first steps are the reference's, answered exactly.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "webui_standin"), str(ROOT / "bench")]

import harness  # noqa: E402
from modules import script_callbacks  # noqa: E402

from lib_negative_delay import TITLE  # noqa: E402
from toy import metrics, presence  # noqa: E402
from toy.model import ToyLDM  # noqa: E402
from toy.world import ACCESSORIES, prompts_implying  # noqa: E402

SIGNALS = ("a_cos", "a_gain", "b_mean", "b_conc", "c", "w")


def relative_change(previous: torch.Tensor, current: torch.Tensor) -> torch.Tensor:
    """Per image ``||current - previous|| / ||current||`` (signal c, evaluated here only)."""
    diff = (current.float() - previous.float()).flatten(1).norm(dim=1)
    return diff / current.float().flatten(1).norm(dim=1).clamp_min(1e-8)


class SignalRecorder:
    """on_cfg_denoiser callback: records every signal at the first evaluation of each step."""

    def __init__(self, model: ToyLDM, batch: int, negative: str) -> None:
        self.model = model
        self.negative = negative
        self.batch = batch
        self.neg_context = model.get_learned_conditioning([negative])
        words = len(negative.split())
        self.neg_tokens = list(range(1, 1 + words))  # "<bos> word... <eos> <pad>..."
        self.rows: dict[str, list[torch.Tensor]] = {k: [] for k in SIGNALS}
        self._maps: list[torch.Tensor] = []
        self._capture = False
        self._previous_x0: torch.Tensor | None = None
        self._last_step = -1
        self._hooks = [
            m.attn2.register_forward_hook(self._attn_hook)
            for m in model.modules()
            if type(m).__name__ == "SpatialTransformer"
        ]

    def close(self) -> None:
        for h in self._hooks:
            h.remove()

    def _attn_hook(self, module, inputs, output) -> None:  # noqa: ANN001
        if not self._capture:
            return
        x = inputs[0]
        b, n, c = x.shape
        h = module.heads
        q = module.to_q(x).view(b, n, h, c // h).transpose(1, 2)
        k = module.to_k(self.neg_context.expand(b, -1, -1)).view(b, -1, h, c // h).transpose(1, 2)
        probs = torch.softmax(q @ k.transpose(-1, -2) / (c // h) ** 0.5, dim=-1)
        self._maps.append(probs[..., self.neg_tokens].sum(-1).mean(1))  # [b, n]

    def __call__(self, params) -> None:  # noqa: ANN001
        denoiser = params.denoiser
        step = denoiser.step
        if step <= self._last_step:
            return
        self._last_step = step
        b = self.batch
        x, sigma = params.x[:b], params.sigma[:b]
        inner = denoiser.inner_model
        with torch.no_grad():
            x0_neg = inner(x, sigma, cond={"c_crossattn": [self.neg_context.expand(b, -1, -1)]})
            self._maps.clear()
            self._capture = True
            x0_pos = inner(x, sigma, cond={"c_crossattn": [params.text_cond[:b]]})
            self._capture = False
            x0_emp = inner(x, sigma, cond={"c_crossattn": [params.text_uncond[:b]]})
        d_neg, d_pos = (x0_neg - x0_emp).flatten(1), (x0_pos - x0_emp).flatten(1)
        self.rows["a_cos"].append(torch.nn.functional.cosine_similarity(d_neg, d_pos, dim=1))
        self.rows["a_gain"].append((d_pos * d_neg).sum(1) / d_neg.pow(2).sum(1).clamp_min(1e-12))
        means = torch.stack([m.mean(1) for m in self._maps]).mean(0)
        concs = torch.stack(
            [(m / m.sum(1, keepdim=True)).topk(max(1, m.shape[1] // 10), dim=1).values.sum(1) for m in self._maps]
        ).mean(0)
        self.rows["b_mean"].append(means)
        self.rows["b_conc"].append(concs)
        prev = self._previous_x0
        self.rows["c"].append(torch.full((b,), float("inf")) if prev is None else relative_change(prev, x0_pos))
        self._previous_x0 = x0_pos
        self.rows["w"].append(presence.accessory_score(x0_pos.clamp(-1, 1), self.negative))


def generate(prompt: str, negative: str, base: dict, args: list | None) -> torch.Tensor:
    scripts = {TITLE: {"args": args}} if args is not None else None
    res = harness.txt2img(prompt=prompt, negative_prompt=negative, **base, alwayson_scripts=scripts)
    return torch.stack([torch.as_tensor(im).float() for im in res.images])


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--prompts", type=int, default=8)
    ap.add_argument("--seeds", type=int, default=16)
    ap.add_argument("--prompt-seed", type=int, default=1234, help="seed of toy.world.prompts_implying")
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--sampler", default="Euler")
    ap.add_argument("--negatives", default=",".join(ACCESSORIES))
    ap.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch's default)")
    ap.add_argument("--out", default=str(ROOT / "bench" / "out" / "auto_cases.pt"))
    args = ap.parse_args(argv)
    from bench_delay import start_stand_in

    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    negatives = [n.strip() for n in args.negatives.split(",") if n.strip()]
    model, meter = start_stand_in()
    steps, n = args.steps, args.seeds
    base = dict(steps=steps, sampler_name=args.sampler, width=32, height=32, batch_size=n, seed=1000, cfg_scale=7.0)
    prompts = {neg: prompts_implying(neg, args.prompts, args.prompt_seed, model.world_link) for neg in negatives}
    keys = ("present", "ssim", "score", "present_ref", *SIGNALS)
    data: dict[str, dict[str, list]] = {neg: {k: [] for k in keys} for neg in negatives}
    t0 = time.perf_counter()
    with torch.inference_mode():
        for neg in negatives:
            d = data[neg]
            for pi, prompt in enumerate(prompts[neg]):
                meter.memo.clear()
                meter.memo_on, meter.store = True, True
                ref = generate(prompt, "", base, None)
                meter.store = False
                d["present_ref"].append(presence.accessory_present(ref * 2 - 1, neg))
                present, ssims, scores = [], [], []
                for delay in range(steps + 1):
                    img = generate(prompt, neg, base, [True, delay])
                    now = presence.accessory_present(img * 2 - 1, neg)
                    s = metrics.preservation(img, ref, accessory=neg)["ssim"]
                    present.append(now)
                    ssims.append(s)
                    scores.append(metrics.case_score(now, s))
                d["present"].append(torch.stack(present))
                d["ssim"].append(torch.stack(ssims))
                d["score"].append(torch.stack(scores))
                rec = SignalRecorder(model, n, neg)
                script_callbacks.on_cfg_denoiser(rec)
                try:
                    generate(prompt, neg, base, [True, steps])  # the negative is never applied
                finally:
                    rec.close()
                    cbs = script_callbacks.callback_map["callbacks_cfg_denoiser"]
                    cbs[:] = [c for c in cbs if c.callback is not rec]
                for k in SIGNALS:
                    d[k].append(torch.stack(rec.rows[k]))  # [steps, n]
                print(f"{neg} {pi + 1}/{len(prompts[neg])} {prompt!r}: {time.perf_counter() - t0:.0f} s", flush=True)
    out: dict = {neg: {k: torch.stack(v) for k, v in d.items()} for neg, d in data.items()}  # [prompts, ...]
    out["config"] = {
        "prompts": prompts,
        "seeds": n,
        "steps": steps,
        "sampler": args.sampler,
        "negatives": negatives,
        "model": model.sd_model_hash,
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    torch.save(out, args.out)
    print(f"wrote {args.out} ({time.perf_counter() - t0:.0f} s)")


if __name__ == "__main__":
    main()
