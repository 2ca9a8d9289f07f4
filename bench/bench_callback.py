"""Cost of the CFG-denoiser callback per denoiser evaluation (CPU), with SD1- and SDXL-sized tensors.

    .venv/bin/python bench/bench_callback.py

Prints microseconds per call for: extension disabled, a step that gets the empty conditioning, and a
step after the switch. Compare with one UNet evaluation (tens of milliseconds on a GPU at 512x512).
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "webui_standin")]

from modules import shared  # noqa: E402

from lib_negative_delay.settings import DelaySettings, GenerationState  # noqa: E402
from lib_negative_delay.webui import empty_cond, generation  # noqa: E402


def _time(fn, n: int = 20000) -> float:
    for _ in range(200):
        fn()
    start = time.perf_counter()
    for _ in range(n):
        fn()
    return (time.perf_counter() - start) / n * 1e6


def measure(uncond: object, empty: object) -> dict:
    sampler = SimpleNamespace(config=SimpleNamespace(name="Euler", options={}), funcname="sample_euler")
    p = SimpleNamespace(sampler_name="Euler")
    denoiser = SimpleNamespace(p=p, step=0, sampler=sampler)
    params = SimpleNamespace(denoiser=denoiser, sampling_step=0, text_uncond=uncond)
    shared.sd_model = SimpleNamespace()
    state = GenerationState(settings=DelaySettings(True, 5))
    state.prepared, state.counting = True, True
    state.empty, state.empty_key = empty, -1
    state.empty_identity = empty_cond.identity(shared.sd_model)

    def call() -> None:
        params.text_uncond = uncond
        generation.on_cfg_denoiser(params)

    setattr(p, generation.STATE_ATTR, None)
    off = _time(call)
    setattr(p, generation.STATE_ATTR, state)
    denoiser.step, params.sampling_step = 2, 1
    swap = _time(call)
    assert params.text_uncond is not uncond
    denoiser.step, params.sampling_step = 9, 8
    after = _time(call)
    return {"disabled_us": round(off, 2), "empty_step_us": round(swap, 2), "after_switch_us": round(after, 2)}


def main() -> None:
    batch = 4
    sd1 = measure(torch.randn(batch, 154, 768), torch.randn(1, 77, 768))
    sdxl = measure(
        {"crossattn": torch.randn(batch, 77, 2048), "vector": torch.randn(batch, 2816)},
        {"crossattn": torch.zeros(1, 77, 2048), "vector": torch.randn(1, 2816)},
    )
    print(json.dumps({"batch": batch, "sd1": sd1, "sdxl": sdxl}, indent=2))


if __name__ == "__main__":
    main()
