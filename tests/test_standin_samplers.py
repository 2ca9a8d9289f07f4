"""The stand-in's UniPC, DDIM CFG++, DPM fast/adaptive, DPM++ 2M/3M SDE, Restart, LCM samplers and its extra schedulers
show an extension what a real WebUI v1.10.1 shows it: the noise levels (or timesteps) of every denoiser evaluation,
how many there are, and the WebUI's step counter (state.sampling_step) at each.

Expected values are either measured in a real v1.10.1 (random SD1.5 weights; /work/shared/webui-contract.md and
traces of the same requests through a per-evaluation trace extension) or derived here from the schedules' definitions
on SD1.5's own noise schedule - never computed with the code under test.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from conftest import _start

STEPS_DEFAULTS = {"prompt": "a cat", "negative_prompt": "ugly", "width": 64, "height": 64, "seed": 1}

# --- SD1.5's schedule, derived here: scaled-linear betas from 0.00085 to 0.012 over 1000 steps ---------------------
_BETAS = [(math.sqrt(0.00085) + (math.sqrt(0.012) - math.sqrt(0.00085)) * i / 999) ** 2 for i in range(1000)]
ALPHAS_CUMPROD = []
_prod = 1.0
for _b in _BETAS:
    _prod *= 1 - _b
    ALPHAS_CUMPROD.append(_prod)
SIGMA = [math.sqrt((1 - a) / a) for a in ALPHAS_CUMPROD]  # sigma of training timestep t
SIGMA_MIN, SIGMA_MAX = SIGMA[0], SIGMA[-1]


def sigma_at(t: float, table: list[float] = SIGMA) -> float:
    """sigma of a fractional index into an ascending table, interpolated linearly in log(sigma)."""
    lo = min(int(math.floor(t)), len(table) - 2)
    w = t - lo
    return math.exp((1 - w) * math.log(table[lo]) + w * math.log(table[lo + 1]))


def karras(n: int, low: float, high: float, rho: float = 7.0) -> list[float]:
    """Karras et al. 2022, eq. 5 (n levels, no trailing 0)."""
    a, b = high ** (1 / rho), low ** (1 / rho)
    return [(a + i / (n - 1) * (b - a)) ** rho for i in range(n)]


def exponential(n: int, low: float, high: float) -> list[float]:
    return [math.exp(math.log(high) + i / (n - 1) * (math.log(low) - math.log(high))) for i in range(n)]


def discrete(n: int) -> list[float]:
    """The 'Automatic' schedule of eps models: n levels at timesteps equally spaced from 999 to 0."""
    return [sigma_at(999 * (1 - i / (n - 1))) for i in range(n)]


# --- helpers ------------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def sd1_module():
    """One stand-in start (with the extension, disabled by default) for the tests that only generate."""
    from fake_models import FakeSD1Model

    model = FakeSD1Model()
    h, rec = _start(model)
    return h, model, rec


@pytest.fixture
def sd1(sd1_module):
    h, model, rec = sd1_module
    if h.current().model is not model:  # another module started the stand-in with its own model since
        h, rec = _start(model)
    model.reset_calls()
    rec.clear()
    return h, model, rec


def generate(h, rec, sampler, steps, scheduler="Automatic", img2img=False, denoising_strength=0.8):
    rec.clear()
    fields = {**STEPS_DEFAULTS, "sampler_name": sampler, "steps": steps, "scheduler": scheduler}
    if img2img:
        res = h.img2img([torch.full((3, 64, 64), 0.5)], denoising_strength=denoising_strength, **fields)
    else:
        res = h.txt2img(**fields)
    image = torch.as_tensor(res.images[0])
    assert bool(torch.isfinite(image).all()), f"{sampler} ({scheduler}) produced a non-finite image"
    levels = [e.sigma for e in rec.evaluations]
    counter = [e.sampling_step for e in rec.evaluations]
    return levels, counter


def same_levels(actual, expected, abs_tol=6e-4):
    """Levels agree to 3 decimals (the tolerance also absorbs the rounding of 3-decimal expected values)."""
    assert len(actual) == len(expected), (actual, expected)
    assert actual == pytest.approx(expected, abs=abs_tol), (actual, expected)


def measured(actual, expected):
    """Agreement with levels traced in the real WebUI, which the trace printed with 4 significant digits."""
    assert len(actual) == len(expected), (actual, expected)
    assert actual == pytest.approx(expected, rel=6e-4), (actual, expected)


def one_per_step_counter(n: int) -> list[int]:
    """The counter of a one-evaluation-per-step sampler whose callback follows each evaluation: 0, 0, 1, 2, ..."""
    return [max(i - 1, 0) for i in range(n)]


# --- registration -------------------------------------------------------------------------------------------------

V1101_SAMPLERS = {  # name: (aliases, options), as v1.10.1 registers them
    "DPM++ 2M SDE": (["k_dpmpp_2m_sde"], {"scheduler": "exponential", "brownian_noise": True}),
    "DPM++ 2M SDE Heun": (
        ["k_dpmpp_2m_sde_heun"],
        {"scheduler": "exponential", "brownian_noise": True, "solver_type": "heun"},
    ),
    "DPM++ 3M SDE": (
        ["k_dpmpp_3m_sde"],
        {"scheduler": "exponential", "discard_next_to_last_sigma": True, "brownian_noise": True},
    ),
    "DPM fast": (["k_dpm_fast"], {"uses_ensd": True}),
    "DPM adaptive": (["k_dpm_ad"], {"uses_ensd": True}),
    "Restart": (["restart"], {"scheduler": "karras", "second_order": True}),
    "DDIM CFG++": (["ddim_cfgpp"], {}),
    "UniPC": (["unipc"], {}),
    "LCM": (["k_lcm"], {}),
}
V1101_ORDER = [
    "DPM++ 2M", "DPM++ SDE", "DPM++ 2M SDE", "DPM++ 2M SDE Heun", "DPM++ 2S a", "DPM++ 3M SDE", "Euler a", "Euler",
    "LMS", "Heun", "DPM2", "DPM2 a", "DPM fast", "DPM adaptive", "Restart",
    "DDIM", "DDIM CFG++", "PLMS", "UniPC", "LCM",
]  # fmt: skip
V1101_SCHEDULERS = [  # name, label, need_inner_model, default_rho, aliases
    ("automatic", "Automatic", False, -1, None),
    ("uniform", "Uniform", True, -1, None),
    ("karras", "Karras", False, 7.0, None),
    ("exponential", "Exponential", False, -1, None),
    ("polyexponential", "Polyexponential", False, 1.0, None),
    ("sgm_uniform", "SGM Uniform", True, -1, ["SGMUniform"]),
    ("kl_optimal", "KL Optimal", False, -1, None),
    ("align_your_steps", "Align Your Steps", False, -1, None),
    ("simple", "Simple", True, -1, None),
    ("normal", "Normal", True, -1, None),
    ("ddim", "DDIM", True, -1, None),
    ("beta", "Beta", True, -1, None),
]


def test_samplers_and_schedulers_registered_as_in_v1_10_1(sd1):
    from modules import sd_samplers, sd_schedulers, shared

    assert [s.name for s in sd_samplers.all_samplers] == V1101_ORDER
    for name, (aliases, options) in V1101_SAMPLERS.items():
        config = sd_samplers.all_samplers_map[name]
        assert (config.aliases, config.options) == (aliases, options), name
        for alias in aliases:
            assert sd_samplers.samplers_map[alias] == name
    assert sd_samplers.find_sampler_config("Restart").total_steps(10) == 20  # "second_order"
    got = [(s.name, s.label, s.need_inner_model, s.default_rho, s.aliases) for s in sd_schedulers.schedulers]
    assert got == V1101_SCHEDULERS
    assert sd_samplers.get_sampler_and_scheduler("DPM++ 2M SDE Karras", None) == ("DPM++ 2M SDE", "Karras")
    assert sd_samplers.get_sampler_and_scheduler("Euler Align Your Steps", None) == ("Euler", "Align Your Steps")
    assert (shared.opts.beta_dist_alpha, shared.opts.beta_dist_beta) == (0.6, 0.6)


# --- timestep samplers: UniPC, DDIM CFG++ --------------------------------------------------------------------------


def test_unipc_txt2img_one_evaluation_per_step_counter_lags_two(sd1):
    h, _, rec = sd1
    levels, counter = generate(h, rec, "UniPC", 8)
    # t from 1 down to 1/1000 in 8 equal steps; the model gets 1000 * (t - 1/1000); nothing is evaluated at the end
    same_levels(levels, [999 - 999 / 8 * k for k in range(8)])
    assert levels[:3] == pytest.approx([999, 874.125, 749.25], abs=1e-3)
    assert counter == [0, 0, 0, 1, 2, 3, 4, 5]  # the callback follows the evaluation after each step


def test_unipc_img2img_starts_at_the_last_scheduled_timestep(sd1):
    h, _, rec = sd1
    levels, counter = generate(h, rec, "UniPC", 10, img2img=True)
    # t_enc = 8 of timesteps 1, 101, ..., 901: t_start = 701/1000 + 1/1000, 8 steps down to 1/1000
    same_levels(levels, [701 - 701 / 8 * k for k in range(8)])
    measured(levels, [701.0, 613.4, 525.8, 438.1, 350.5, 262.9, 175.2, 87.62])
    assert counter == [0, 0, 0, 1, 2, 3, 4, 5]


def test_unipc_runs_len_timesteps_steps_and_needs_order_steps(sd1):
    h, _, rec = sd1
    # 3 steps: timesteps range(0, 1000, 333) + 1 has 4 entries, so UniPC runs 4 steps (order 3 fits)
    levels, counter = generate(h, rec, "UniPC", 3)
    same_levels(levels, [999, 749.25, 499.5, 249.75])
    assert counter == [0, 0, 0, 1]


def test_unipc_options(sd1):
    from modules import shared

    h, _, rec = sd1
    try:
        for variant in ("bh1", "bh2", "vary_coeff"):
            for skip in ("time_uniform", "time_quadratic", "logSNR"):
                shared.opts.uni_pc_variant, shared.opts.uni_pc_skip_type = variant, skip
                levels, counter = generate(h, rec, "UniPC", 8)
                assert len(levels) == 8 and levels[0] == pytest.approx(999) and counter == [0, 0, 0, 1, 2, 3, 4, 5]
                if skip == "time_quadratic":  # equal steps in sqrt(t)
                    ts = [(1 + (math.sqrt(0.001) - 1) * k / 8) ** 2 for k in range(8)]
                    same_levels(levels, [1000 * (t - 0.001) for t in ts], abs_tol=2e-3)
        shared.opts.uni_pc_order, shared.opts.uni_pc_lower_order_final = 2, False
        levels, counter = generate(h, rec, "UniPC", 5)
        assert len(levels) == 5 and counter == [0, 0, 0, 1, 2]
    finally:
        for key in ("uni_pc_variant", "uni_pc_skip_type", "uni_pc_order", "uni_pc_lower_order_final"):
            setattr(shared.opts, key, shared.opts.data_labels[key].default)


def test_ddim_cfgpp_timesteps_and_guidance_scale(sd1):
    from modules import script_callbacks

    h, _, rec = sd1
    seen = []

    def scale(params):
        seen.append((params.denoiser.cond_scale_miltiplier, params.denoiser.need_last_noise_uncond))

    script_callbacks.on_cfg_denoiser(scale)
    try:
        levels, counter = generate(h, rec, "DDIM CFG++", 8)
    finally:
        script_callbacks.remove_callbacks_for_function(scale)
    assert levels == [876, 751, 626, 501, 376, 251, 126]  # like DDIM: the last step lands on timestep 1
    assert counter == one_per_step_counter(7)
    assert seen == [(pytest.approx(1 / 12.5), True)] * 7  # CFG scale / 12.5; the uncond noise is kept
    levels, counter = generate(h, rec, "DDIM CFG++", 10, img2img=True)
    assert levels == [701, 601, 501, 401, 301, 201, 101]
    assert counter == one_per_step_counter(7)


# --- DPM fast / adaptive -------------------------------------------------------------------------------------------

DPM_FAST_8 = [14.615, 3.671, 0.922, 1.840, 0.462, 0.116, 0.232, 0.082]  # contract


def dpm_fast_levels(sigma_max: float, sigma_min: float, nfe: int, eta: float = 1.0) -> list[float]:
    """DPM-Solver-fast on lambda = -log(sigma): nfe // 3 + 1 equal steps, orders 3, ..., 3 then (2, 1) or nfe % 3;
    an order-k step evaluates at its start and k - 1 equally spaced points; with eta = 1 a step solves to the
    ancestral sigma_down = sigma_next^2 / sigma (twice as far on lambda), never past the end."""
    start, end = -math.log(sigma_max), -math.log(sigma_min)
    k = nfe // 3 + 1
    orders = [3] * (k - 2) + [2, 1] if nfe % 3 == 0 else [3] * (k - 1) + [nfe % 3]
    grid = [start + (end - start) * i / k for i in range(k + 1)]
    out = []
    for i, order in enumerate(orders):
        target = min(end, 2 * grid[i + 1] - grid[i]) if eta else grid[i + 1]
        out += [math.exp(-(grid[i] + (target - grid[i]) * j / order)) for j in range(order)]
    return out


def test_dpm_fast_txt2img_levels_and_callback_per_solver_step(sd1):
    h, _, rec = sd1
    levels, counter = generate(h, rec, "DPM fast", 8)
    same_levels(levels, DPM_FAST_8)
    same_levels(levels, dpm_fast_levels(SIGMA_MAX, SIGMA_MIN, 8))
    assert counter == [0, 0, 0, 0, 1, 1, 1, 2]  # orders 3, 3, 2; callback after each step's first evaluation
    levels, counter = generate(h, rec, "DPM fast", 10)  # orders 3, 3, 3, 1
    same_levels(levels, dpm_fast_levels(SIGMA_MAX, SIGMA_MIN, 10))
    assert counter == [0, 0, 0, 0, 1, 1, 1, 2, 2, 2]


def test_dpm_fast_img2img_uses_the_tail_of_the_schedule(sd1):
    h, _, rec = sd1
    levels, counter = generate(h, rec, "DPM fast", 10, img2img=True)
    # sigma_sched = the last 9 of the 10-step schedule: sigma_max = sigma_sched[0], sigma_min = sigma_sched[-2], n = 9
    measured(levels, [7.84, 3.086, 1.215, 1.936, 0.7622, 0.3, 0.4782, 0.1181, 0.1181])
    tail = discrete(10)[1:]
    same_levels(levels, dpm_fast_levels(tail[0], tail[-1], 9))
    assert counter == [0, 0, 0, 0, 1, 1, 1, 2, 2]
    # sigma_sched[-2] is the schedule's last level, not the model's sigma_min: the 'DDIM' schedule ends at sigma(1)
    levels, _ = generate(h, rec, "DPM fast", 10, scheduler="DDIM", img2img=True)
    ddim_tail = [SIGMA[t] for t in range(1, 1000, 100)][::-1][1:]
    same_levels(levels, dpm_fast_levels(ddim_tail[0], ddim_tail[-1], 9))
    measured(levels, [5.134, 2.298, 1.029, 1.538, 0.6884, 0.3082, 0.4606, 0.1379, 0.1379])  # real v1.10.1
    levels, _ = generate(h, rec, "DPM fast", 8, scheduler="DDIM")  # txt2img: the model's own range, any schedule
    same_levels(levels, DPM_FAST_8)


def adaptive_attempts(levels: list[float]) -> list[tuple[float, float]]:
    """(start lambda, span on lambda) of each attempted step: its evaluations sit at 0, 1/3 and 2/3 of the span."""
    assert len(levels) % 3 == 0
    out = []
    for k in range(0, len(levels), 3):
        a, b, c = (-math.log(v) for v in levels[k : k + 3])
        assert c - b == pytest.approx(b - a, abs=2e-3)  # equally spaced on lambda
        out.append((a, 3 * (b - a)))
    return out


def check_adaptive_walk(levels: list[float], sigma_max: float, sigma_min: float) -> tuple[int, int]:
    """Every attempt starts where the last accepted one ended (a rejected one is retried from the same level with a
    smaller span); with eta = 1 an accepted step ends half way along its span, the last one exactly at sigma_min."""
    attempts = adaptive_attempts(levels)
    assert attempts[0][0] == pytest.approx(-math.log(sigma_max), abs=1e-4)
    end = -math.log(sigma_min)
    accepted = rejected = 0
    for (start, span), (next_start, next_span) in zip(attempts, attempts[1:], strict=False):
        if next_start == pytest.approx(start, abs=1e-4):
            rejected += 1
            assert next_span < span
        else:
            accepted += 1
            if start + span < end - 2e-3:
                assert next_start - start == pytest.approx(span / 2, abs=2e-3)
            else:  # the span was cut at the end
                assert span / 2 - 2e-3 <= next_start - start <= span + 2e-3
    last_start, last_span = attempts[-1]
    assert math.exp(-(last_start + last_span)) == pytest.approx(sigma_min, rel=2e-3)
    return accepted + 1, rejected


def test_dpm_adaptive_chooses_its_own_steps(sd1):
    h, _, rec = sd1
    levels, counter = generate(h, rec, "DPM adaptive", 8)
    same_levels(levels[:4], [14.615, 14.136, 13.672, 13.902])  # contract; the 4th: the first step was accepted
    check_adaptive_walk(levels, SIGMA_MAX, SIGMA_MIN)
    assert counter == [max(k // 3 - 1, 0) for k in range(len(levels))]  # callback after every attempt
    assert len(levels) != 8
    again, _ = generate(h, rec, "DPM adaptive", 20)
    assert again == levels  # the requested step count plays no part


def test_dpm_adaptive_img2img(sd1):
    h, _, rec = sd1
    levels, counter = generate(h, rec, "DPM adaptive", 10, img2img=True)
    measured(levels[:4], [7.84, 7.583, 7.334, 7.458])  # real v1.10.1; later spans depend on the model's errors
    tail = discrete(10)[1:]
    check_adaptive_walk(levels, tail[0], tail[-1])
    assert counter == [max(k // 3 - 1, 0) for k in range(len(levels))]


def test_dpm_adaptive_rejects_and_retries_too_large_steps():
    import k_diffusion.sampling

    def stiff(x, sigma, **kwargs):  # a denoiser that changes fast with the noise level
        return x * 0 + torch.sin(8 * torch.log(sigma))[:, None, None, None]

    seen = []

    def model(x, sigma, **kwargs):
        seen.append(float(sigma[0]))
        return stiff(x, sigma)

    calls = []
    x = torch.zeros(1, 1, 4, 4)
    _, info = k_diffusion.sampling.sample_dpm_adaptive(
        model, x, 0.03, 14.6, h_init=1.5, rtol=0.001, atol=0.0001, callback=calls.append, return_info=True
    )
    assert info["n_reject"] > 0 and info["n_accept"] > 0
    assert info["steps"] == info["n_accept"] + info["n_reject"] == len(calls)
    assert info["nfe"] == len(seen) == 3 * info["steps"]
    attempts = adaptive_attempts(seen)
    retried = sum(
        1 for (s0, d0), (s1, d1) in zip(attempts, attempts[1:], strict=False) if s1 == pytest.approx(s0) and d1 < d0
    )
    assert retried == info["n_reject"]
    assert math.exp(-sum(attempts[-1])) == pytest.approx(0.03, rel=1e-3)  # eta = 0: a step ends at its span


# --- Restart -------------------------------------------------------------------------------------------------------


def restart_pairs(segments: list[tuple[float, float]]) -> list[float]:
    """Evaluation levels of Heun steps over the segments: start and end of each (no second evaluation at 0)."""
    out = []
    for high, low in segments:
        out += [high] if low == 0 else [high, low]
    return out


def test_restart_short_schedule_is_heun_in_pairs(sd1):
    h, _, rec = sd1
    levels, counter = generate(h, rec, "Restart", 10)
    same_levels(levels[:5], [14.615, 9.103, 9.103, 5.478, 5.478])  # contract
    k = karras(10, SIGMA_MIN, SIGMA_MAX) + [0.0]
    same_levels(levels, restart_pairs(list(zip(k[:-1], k[1:], strict=True))))
    assert counter == [0] + [i // 2 for i in range(len(levels) - 1)]
    levels, counter = generate(h, rec, "Restart", 10, img2img=True)
    same_levels(levels, restart_pairs(list(zip(k[1:-1], k[2:], strict=True))))  # the last 9 segments
    assert counter == [0] + [i // 2 for i in range(len(levels) - 1)]


@pytest.mark.parametrize("steps,restart_steps,times", [(20, 9, 1), (40, 10, 2)])
def test_restart_long_schedule_restarts_from_sigma_2(sd1, steps, restart_steps, times):
    h, _, rec = sd1
    levels, counter = generate(h, rec, "Restart", steps)
    main = karras(steps - restart_steps * times, SIGMA_MIN, SIGMA_MAX) + [0.0]
    low = min(range(len(main)), key=lambda i: abs(main[i] - 0.1))
    high = min(range(len(main)), key=lambda i: abs(main[i] - 2))
    again = karras(restart_steps + 1, main[low], main[high])
    segments = list(zip(main[:low], main[1 : low + 1], strict=True))
    segments += list(zip(again[:-1], again[1:], strict=True)) * times
    segments += list(zip(main[low:-1], main[low + 1 :], strict=True))
    assert len(segments) == steps
    same_levels(levels, restart_pairs(segments))
    if steps == 20:  # real v1.10.1: the restart from 2.232 after reaching 0.07436
        measured(levels[15:20], [0.1698, 0.1698, 0.07436, 2.232, 1.644])
    assert counter == [0] + [i // 2 for i in range(len(levels) - 1)]


# --- DPM++ 2M SDE / 3M SDE ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("sampler", ["DPM++ 2M SDE", "DPM++ 2M SDE Heun"])
def test_dpmpp_2m_sde_levels(sd1, sampler):
    h, _, rec = sd1
    levels, counter = generate(h, rec, sampler, 8, scheduler="Karras")
    same_levels(levels, [14.615, 7.903, 4.028, 1.910, 0.829, 0.321, 0.107, 0.029])  # contract
    assert counter == one_per_step_counter(8)
    levels, counter = generate(h, rec, sampler, 8)  # Automatic = Exponential
    same_levels(levels, exponential(8, SIGMA_MIN, SIGMA_MAX))
    levels, counter = generate(h, rec, sampler, 10, img2img=True)
    same_levels(levels, exponential(10, SIGMA_MIN, SIGMA_MAX)[1:])
    assert counter == one_per_step_counter(9)


def test_dpmpp_3m_sde_discards_the_penultimate_sigma(sd1):
    h, _, rec = sd1
    levels, counter = generate(h, rec, "DPM++ 3M SDE", 8)
    same_levels(levels, exponential(9, SIGMA_MIN, SIGMA_MAX)[:8])  # 9 levels, the 9th (sigma_min) dropped
    assert counter == one_per_step_counter(8)
    levels, counter = generate(h, rec, "DPM++ 3M SDE", 10, img2img=True)
    same_levels(levels, exponential(11, SIGMA_MIN, SIGMA_MAX)[1:10])
    measured(levels, [7.849, 4.215, 2.264, 1.216, 0.6529, 0.3506, 0.1883, 0.1011, 0.05431])  # real v1.10.1
    assert counter == one_per_step_counter(9)


# --- LCM -----------------------------------------------------------------------------------------------------------

LCM_TIMESTEPS = [19 + 20 * i for i in range(50)]
LCM_SIGMA = [SIGMA[t] for t in LCM_TIMESTEPS]


def test_lcm_levels_and_unet_timesteps(sd1):
    h, model, rec = sd1
    model.reset_calls()
    levels, counter = generate(h, rec, "LCM", 8)
    # timesteps equally spaced from 999 to 19: every 7th of the 50 LCM levels
    same_levels(levels, [LCM_SIGMA[49 - 7 * k] for k in range(8)])
    measured(levels, [14.61, 6.768, 3.601, 2.12, 1.323, 0.8299, 0.4765, 0.1345])  # real v1.10.1
    assert counter == one_per_step_counter(8)
    assert [float(c.t[0]) for c in model.calls] == [999 - 140 * k for k in range(8)]


def test_lcm_img2img(sd1):
    h, model, rec = sd1
    levels, counter = generate(h, rec, "LCM", 10, img2img=True)
    # 10 levels at fractional LCM indices 49 * (1 - i/9), interpolated in log sigma; the last 9 are sampled
    same_levels(levels, [sigma_at(49 * (1 - i / 9), LCM_SIGMA) for i in range(1, 10)])
    measured(levels, [7.929, 4.697, 2.991, 2.008, 1.392, 0.9728, 0.6618, 0.4059, 0.1345])  # real v1.10.1
    assert counter == one_per_step_counter(9)


# --- every new sampler works with the extension loaded ----------------------------------------------------------------


def test_new_samplers_with_the_extension_enabled(sd1):
    h, _, rec = sd1
    for sampler in V1101_SAMPLERS:
        generate(h, rec, sampler, 6)
        off = [e.sigma for e in rec.evaluations]
        rec.clear()
        fields = {**STEPS_DEFAULTS, "sampler_name": sampler, "steps": 6}
        res = h.txt2img(**fields, alwayson_scripts={"Negative Prompt Delay": {"args": [True, 2]}})
        assert bool(torch.isfinite(torch.as_tensor(res.images[0])).all()), sampler
        if sampler != "DPM adaptive":  # its steps follow the error estimate, which the changed uncond changes
            assert [e.sigma for e in rec.evaluations] == off, sampler


# --- schedulers -----------------------------------------------------------------------------------------------------


def beta_quantile(q: float, a: float = 0.6, b: float = 0.6) -> float:
    """Quantile of Beta(a, b) by bisection on its CDF; the CDF by Gauss-Legendre quadrature after substituting
    t = u^(1/a) (which removes the singularity at 0), and by symmetry above 1/2."""
    nodes, weights = np.polynomial.legendre.leggauss(80)
    norm = math.exp(math.lgamma(a) + math.lgamma(b) - math.lgamma(a + b))

    def lower(x, a, b):  # integral_0^x t^(a-1) (1-t)^(b-1) dt for x <= 1/2
        top = x**a
        u = (nodes + 1) / 2 * top
        return float(np.sum(weights * (1 - u ** (1 / a)) ** (b - 1)) * top / 2 / a)

    def cdf(x):
        return lower(x, a, b) / norm if x <= 0.5 else 1 - lower(1 - x, b, a) / norm

    if q <= 0 or q >= 1:
        return float(q >= 1)
    lo, hi = 0.0, 1.0
    for _ in range(60):
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if cdf(mid) < q else (lo, mid)
    return (lo + hi) / 2


AYS_SD1 = [14.615, 6.475, 3.861, 2.697, 1.886, 1.396, 0.963, 0.652, 0.399, 0.152, 0.029]


def ays(n: int, table=AYS_SD1) -> list[float]:
    if n == len(table):
        return list(table)
    out = []
    for i in range(n):  # position along the table from its low end, interpolated in log(sigma)
        pos = i / (n - 1) * (len(table) - 1)
        rising = table[::-1]
        lo = min(int(pos), len(table) - 2)
        w = pos - lo
        out.append(math.exp((1 - w) * math.log(rising[lo]) + w * math.log(rising[lo + 1])))
    return out[::-1]


def expected_schedule(name: str, n: int) -> list[float]:
    """The sigmas the named schedule gives for n steps on SD1.5 (without the trailing 0, if it has one)."""
    if name == "KL Optimal":
        top, bottom = math.atan(SIGMA_MAX), math.atan(SIGMA_MIN)
        return [math.tan(top + (bottom - top) * i / n) for i in range(n + 1)]
    if name == "Align Your Steps":
        return ays(n)
    if name == "Simple":
        return [SIGMA[999 - int(i * 1000 / n)] for i in range(n)]
    if name == "Normal":
        return discrete(n)
    if name == "DDIM":
        return [SIGMA[t] for t in range(1, 1000, 1000 // n)][::-1]
    if name == "Beta":
        return [SIGMA_MIN + beta_quantile(1 - i / (n - 1)) * (SIGMA_MAX - SIGMA_MIN) for i in range(n)]
    raise KeyError(name)


MEASURED_EULER = {  # real v1.10.1, Euler: (schedule, steps) -> the levels of the evaluations
    ("KL Optimal", 8): [14.61, 3.876, 2.143, 1.398, 0.9616, 0.6575, 0.4198, 0.2166],
    ("Align Your Steps", 10): [14.61, 6.114, 3.565, 2.394, 1.65, 1.136, 0.7425, 0.445, 0.1692, 0.029],
    ("Simple", 8): [14.61, 7.297, 4.082, 2.493, 1.613, 1.069, 0.6932, 0.3977],
    ("Normal", 8): [14.61, 6.678, 3.522, 2.061, 1.277, 0.7913, 0.4397, 0.02917],
    ("DDIM", 7): [14.27, 6.571, 3.485, 2.047, 1.272, 0.7901, 0.4403, 0.04131],
    ("Beta", 8): [14.61, 13.58, 11.45, 8.76, 5.884, 3.192, 1.067, 0.02917],
}


@pytest.mark.parametrize("name", ["KL Optimal", "Align Your Steps", "Simple", "Normal", "DDIM", "Beta"])
def test_scheduler_sigmas_on_sd15(sd1, name):
    import k_diffusion.external
    from modules import sd_schedulers

    h, model, rec = sd1
    wrap = k_diffusion.external.CompVisDenoiser(model)
    scheduler = sd_schedulers.schedulers_map[name]
    kwargs = {"inner_model": wrap} if scheduler.need_inner_model else {}
    for steps in (8, 10):
        expected = expected_schedule(name, steps)
        sigmas = scheduler.function(n=steps, sigma_min=SIGMA_MIN, sigma_max=SIGMA_MAX, device="cpu", **kwargs)
        if name == "KL Optimal":  # n + 1 levels ending at sigma_min itself, no 0
            same_levels(sigmas.tolist(), expected, abs_tol=2e-4)
        else:
            same_levels(sigmas.tolist(), expected + [0.0], abs_tol=2e-4)
        levels, counter = generate(h, rec, "Euler", steps, scheduler=name)
        same_levels(levels, expected[: len(sigmas) - 1])
        assert counter == one_per_step_counter(len(sigmas) - 1)
        if (name, steps) in MEASURED_EULER:
            measured(levels, MEASURED_EULER[name, steps])


def test_ddim_schedule_can_have_more_levels_than_steps(sd1):
    h, _, rec = sd1
    levels, _ = generate(h, rec, "Euler", 7, scheduler="DDIM")  # stride 1000 // 7 = 142: timesteps 1, 143, ..., 995
    same_levels(levels, [SIGMA[t] for t in range(1, 1000, 142)][::-1])
    measured(levels, MEASURED_EULER["DDIM", 7])
    assert len(levels) == 8


def test_align_your_steps_table_by_model_type(sd1):
    h, _, rec = sd1
    levels, _ = generate(h, rec, "Euler", 11, scheduler="Align Your Steps")
    same_levels(levels, AYS_SD1)  # 11 steps: the published table itself
    from fake_models import FakeSDXLModel

    h.start(None, FakeSDXLModel())
    from modules import sd_schedulers

    sdxl_table = [14.615, 6.315, 3.771, 2.181, 1.342, 0.862, 0.555, 0.380, 0.234, 0.113, 0.029]
    got = sd_schedulers.schedulers_map["Align Your Steps"].function(n=11, sigma_min=0, sigma_max=0, device="cpu")
    same_levels(got.tolist(), sdxl_table + [0.0], abs_tol=1e-6)
    got = sd_schedulers.schedulers_map["align_your_steps"].function(n=8, sigma_min=0, sigma_max=0, device="cpu")
    same_levels(got.tolist(), ays(8, sdxl_table) + [0.0], abs_tol=2e-4)
