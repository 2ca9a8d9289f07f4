"""The step/noise-level arithmetic of the core, checked against independent computations."""

import pytest
import torch

from lib_negative_delay.schedule import (
    EvalPattern,
    PassGeometry,
    consistent_with_counter,
    pattern_for_sampler,
    step_of_evaluation,
)


def karras(n: int, sigma_min: float = 0.03, sigma_max: float = 14.6, rho: float = 7.0) -> torch.Tensor:
    """Karras et al. schedule written out from the paper's formula (no zero appended)."""
    ramp = torch.linspace(0, 1, n, dtype=torch.float64)
    lo, hi = sigma_min ** (1 / rho), sigma_max ** (1 / rho)
    return (hi + ramp * (lo - hi)) ** rho


@pytest.mark.parametrize("steps", [1, 2, 5, 20, 37])
def test_txt2img_starts_exactly_at_the_delay(steps):
    geometry = PassGeometry.txt2img(steps)
    for delay in range(0, steps):
        assert geometry.negative_start(delay) == delay


def test_delay_at_or_beyond_steps_never_applies():
    assert PassGeometry.txt2img(20).negative_start(20) >= 20
    assert PassGeometry.txt2img(20).negative_start(150) >= 20
    hires = PassGeometry.partial(10, 20, 10)
    assert hires.negative_start(10) >= 10


@pytest.mark.parametrize("requested,strength", [(20, 0.3), (20, 0.55), (30, 0.75), (12, 0.9), (25, 0.2)])
def test_partial_pass_follows_the_noise_level(requested, strength):
    """A pass cut from a longer schedule switches where its sigma falls to the txt2img delay's sigma."""
    full = int(requested / strength)  # "do exactly the amount of steps" / hires rule
    geometry = PassGeometry.partial(requested, full, requested)
    pass_sigmas = karras(full)[full - requested :]
    txt2img = karras(requested)
    for delay in range(1, requested):
        threshold = txt2img[delay]
        expected = next((j for j, s in enumerate(pass_sigmas) if s <= threshold * (1 + 1e-9)), requested)
        assert geometry.negative_start(delay) == expected, (delay, pass_sigmas[:4], threshold)


def test_img2img_default_counts_in_the_users_steps():
    # 20 steps at strength 0.5: the WebUI runs the last 11 steps of the 20-step schedule (offset 9)
    geometry = PassGeometry.partial(20, 20, 11)
    assert geometry.offset == 9
    assert [geometry.negative_start(d) for d in (0, 3, 9, 10, 12, 19)] == [0, 0, 0, 1, 3, 10]


EULER = [(0, 0), (1, 0), (2, 1), (3, 2), (4, 3)]  # (evaluation, sampling_step), contract, 5 steps
HEUN = [(0, 0), (1, 0), (2, 0), (3, 1), (4, 1), (5, 2), (6, 2), (7, 3), (8, 3)]
PLMS = [(0, 0), (1, 0), (2, 0), (3, 1), (4, 2), (5, 3)]


@pytest.mark.parametrize(
    "pattern,trace,steps",
    [
        (EvalPattern.ONE_PER_STEP, EULER, [0, 1, 2, 3, 4]),
        (EvalPattern.FOLLOW_CALLBACK, EULER, [0, 1, 2, 3, 4]),
        (EvalPattern.TWO_PER_STEP, HEUN, [0, 0, 1, 1, 2, 2, 3, 3, 4]),
        (EvalPattern.PLMS, PLMS, [0, 0, 1, 2, 3, 4]),
    ],
)
def test_steps_of_evaluations(pattern, trace, steps):
    got = [step_of_evaluation(e, s, pattern) for e, s in trace]
    assert got == steps
    assert all(consistent_with_counter(k, s) for k, (_, s) in zip(got, trace, strict=False))


def test_wrong_pattern_is_caught_by_the_counter():
    got = [step_of_evaluation(e, s, EvalPattern.ONE_PER_STEP) for e, s in HEUN]
    assert not all(consistent_with_counter(k, s) for k, (_, s) in zip(got, HEUN, strict=False))


@pytest.mark.parametrize(
    "name,funcname,second_order,expected",
    [
        ("Euler", "sample_euler", False, EvalPattern.ONE_PER_STEP),
        ("Heun", "sample_heun", True, EvalPattern.TWO_PER_STEP),
        ("DPM2", "sample_dpm_2", True, EvalPattern.TWO_PER_STEP),
        ("DPM++ SDE", "sample_dpmpp_sde", True, EvalPattern.TWO_PER_STEP),
        ("DPM++ 2M", "sample_dpmpp_2m", False, EvalPattern.ONE_PER_STEP),
        ("PLMS", "plms", False, EvalPattern.PLMS),
        ("DDIM", "ddim", False, EvalPattern.ONE_PER_STEP),
        ("Restart", "restart_sampler", True, EvalPattern.FOLLOW_CALLBACK),
        ("DPM adaptive", "sample_dpm_adaptive", False, EvalPattern.FOLLOW_CALLBACK),
        ("Someone's sampler", None, True, EvalPattern.TWO_PER_STEP),
    ],
)
def test_pattern_for_sampler(name, funcname, second_order, expected):
    assert pattern_for_sampler(name, funcname, second_order) is expected
