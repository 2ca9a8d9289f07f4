"""The step/noise-level arithmetic of the core, checked against independent computations."""

import math

import pytest
import torch

from lib_negative_delay.schedule import (
    EvalPattern,
    Reference,
    TimestepScale,
    consistent_with_counter,
    pattern_for_sampler,
    starts_step,
    step_of_evaluation,
    unipc_levels,
)


def karras(n: int, sigma_min: float = 0.03, sigma_max: float = 14.6, rho: float = 7.0) -> torch.Tensor:
    """Karras et al. schedule written out from the paper's formula (no zero appended)."""
    ramp = torch.linspace(0, 1, n, dtype=torch.float64)
    lo, hi = sigma_min ** (1 / rho), sigma_max ** (1 / rho)
    return (hi + ramp * (lo - hi)) ** rho


def sd_alphas_cumprod() -> list[float]:
    """Stable Diffusion's "scaled linear" beta schedule (0.00085 to 0.012 over 1000 steps), written out."""
    out, prod = [], 1.0
    for i in range(1000):
        beta = (math.sqrt(0.00085) + (math.sqrt(0.012) - math.sqrt(0.00085)) * i / 999) ** 2
        prod *= 1 - beta
        out.append(prod)
    return out


@pytest.mark.parametrize("steps", [1, 2, 5, 20, 37])
def test_a_txt2img_runs_own_levels_map_back_to_their_steps(steps):
    ref = Reference(tuple(karras(steps).tolist()))
    assert [ref.equivalent_step(x) for x in ref.levels] == list(range(steps))
    assert ref.equivalent_step(ref.levels[0] * 2) == 0  # above the top of the schedule
    assert ref.equivalent_step(0.0) == steps - 1
    # within the tolerance of float rounding, a level still counts as reached
    assert [ref.equivalent_step(x * (1 + 2e-5)) for x in ref.levels] == list(range(steps))


def test_delay_at_or_beyond_steps_never_applies():
    ref = Reference(tuple(karras(20).tolist()))
    assert ref.never(20) and ref.never(150) and not ref.never(19)
    assert max(ref.equivalent_step(x) for x in [100.0, 1.0, 0.0]) < 20


def test_reference_rejects_unusable_levels():
    for levels in [(), (1.0, 2.0), (float("nan"),), (-1.0,)]:
        with pytest.raises(ValueError):
            Reference(levels)


@pytest.mark.parametrize("requested,strength", [(20, 0.3), (20, 0.55), (30, 0.75), (12, 0.9), (25, 0.2)])
def test_partial_pass_follows_the_noise_level(requested, strength):
    """A pass cut from a longer schedule uses the negative exactly where its level is at or below the delay's."""
    full = int(requested / strength)  # "do exactly the amount of steps" / hires rule
    pass_sigmas = karras(full)[full - requested :].tolist()
    ref = Reference(tuple(karras(requested).tolist()))
    for delay in range(1, requested):
        threshold = karras(requested)[delay].item()
        got = [ref.equivalent_step(s) >= delay for s in pass_sigmas]
        assert got == [s <= threshold * (1 + 1e-9) for s in pass_sigmas], (delay, pass_sigmas[:4], threshold)


def test_timestep_scale_matches_the_discrete_sigmas():
    ac = sd_alphas_cumprod()
    scale = TimestepScale(ac)
    for t in (0, 1, 101, 500, 874, 999):
        assert scale.sigma(t) == pytest.approx(math.sqrt((1 - ac[t]) / ac[t]), rel=1e-9)
    assert scale.sigma(999) == pytest.approx(14.6146, abs=1e-3)  # SD1.5's sigma_max
    assert scale.sigma(0) == pytest.approx(0.0292, abs=1e-3)
    # fractional timesteps: log sqrt(alpha_bar) interpolated linearly
    half = 0.5 * (0.5 * math.log(ac[874]) + 0.5 * math.log(ac[875]))
    assert scale.sigma(874.5) == pytest.approx(math.sqrt(math.exp(-2 * half) - 1), rel=1e-9)


def test_unipc_levels():
    scale = TimestepScale(sd_alphas_cumprod())
    uniform = unipc_levels(scale, 8, "time_uniform")
    # measured in a real WebUI v1.10.1: UniPC, 8 steps, timesteps 999, 874.125, 749.25, …
    assert uniform[:3] == pytest.approx([scale.sigma(999), scale.sigma(874.125), scale.sigma(749.25)], rel=1e-9)
    snr = unipc_levels(scale, 8, "logSNR")
    ratios = [b / a for a, b in zip(snr, snr[1:], strict=False)]
    assert ratios == pytest.approx([ratios[0]] * 7, rel=1e-9)  # even in log sigma
    assert snr[0] == pytest.approx(scale.sigma(999)) and snr[-1] * ratios[0] == pytest.approx(scale.sigma(0))
    quad = unipc_levels(scale, 4, "time_quadratic")
    times = [(1 + (math.sqrt(1e-3) - 1) * k / 4) ** 2 for k in range(4)]
    assert quad == pytest.approx([scale.sigma((t - 1e-3) * 1000) for t in times], rel=1e-9)


EULER = [(0, 0), (1, 0), (2, 1), (3, 2), (4, 3)]  # (evaluation, sampling_step), contract, 5 steps
HEUN = [(0, 0), (1, 0), (2, 0), (3, 1), (4, 1), (5, 2), (6, 2), (7, 3), (8, 3)]
PLMS = [(0, 0), (1, 0), (2, 0), (3, 1), (4, 2), (5, 3)]
UNIPC = [(0, 0), (1, 0), (2, 0), (3, 1), (4, 2), (5, 3)]  # real v1.10.1: callback after the next evaluation


@pytest.mark.parametrize(
    "pattern,trace,steps,firsts",
    [
        (EvalPattern.ONE_PER_STEP, EULER, [0, 1, 2, 3, 4], [True] * 5),
        (EvalPattern.TWO_PER_STEP, HEUN, [0, 0, 1, 1, 2, 2, 3, 3, 4], [True, False] * 4 + [True]),
        (EvalPattern.PLMS, PLMS, [0, 0, 1, 2, 3, 4], [True, False, True, True, True, True]),
        (EvalPattern.LATE_CALLBACK, UNIPC, [0, 1, 2, 3, 4, 5], [True] * 6),
    ],
)
def test_steps_of_evaluations(pattern, trace, steps, firsts):
    got = [step_of_evaluation(e, pattern) for e, _ in trace]
    assert got == steps
    assert [starts_step(e, pattern) for e, _ in trace] == firsts
    assert all(consistent_with_counter(k, s, pattern) for k, (_, s) in zip(got, trace, strict=True))


def test_wrong_pattern_is_caught_by_the_counter():
    got = [step_of_evaluation(e, EvalPattern.ONE_PER_STEP) for e, _ in HEUN]
    assert not all(consistent_with_counter(k, s, EvalPattern.ONE_PER_STEP) for k, (_, s) in zip(got, HEUN, strict=True))
    # UniPC's late callback is not mistaken for a one-evaluation-per-step sampler's, nor the other way round
    assert not all(consistent_with_counter(k, s, EvalPattern.ONE_PER_STEP) for k, s in UNIPC)
    assert not consistent_with_counter(3, 0, EvalPattern.LATE_CALLBACK)


@pytest.mark.parametrize(
    "name,funcname,expected",
    [
        ("Euler", "sample_euler", EvalPattern.ONE_PER_STEP),
        ("Heun", "sample_heun", EvalPattern.TWO_PER_STEP),
        ("DPM2", "sample_dpm_2", EvalPattern.TWO_PER_STEP),
        ("DPM++ SDE", "sample_dpmpp_sde", EvalPattern.TWO_PER_STEP),
        ("DPM++ 2M", "sample_dpmpp_2m", EvalPattern.ONE_PER_STEP),
        ("DPM++ 2M SDE Heun", "sample_dpmpp_2m_sde", EvalPattern.ONE_PER_STEP),
        ("DPM++ 3M SDE", "sample_dpmpp_3m_sde", EvalPattern.ONE_PER_STEP),
        ("LCM", "sample_lcm", EvalPattern.ONE_PER_STEP),
        ("PLMS", "plms", EvalPattern.PLMS),
        ("DDIM", "ddim", EvalPattern.ONE_PER_STEP),
        ("DDIM CFG++", "ddim_cfgpp", EvalPattern.ONE_PER_STEP),
        ("UniPC", "unipc", EvalPattern.LATE_CALLBACK),
        ("Restart", "restart_sampler", EvalPattern.NO_STEPS),
        ("DPM fast", "sample_dpm_fast", EvalPattern.NO_STEPS),
        ("DPM adaptive", "sample_dpm_adaptive", EvalPattern.NO_STEPS),
        ("Someone's sampler", None, EvalPattern.NO_STEPS),
        ("Someone's sampler", "sample_something_new", EvalPattern.NO_STEPS),
    ],
)
def test_pattern_for_sampler(name, funcname, expected):
    assert pattern_for_sampler(name, funcname) is expected
