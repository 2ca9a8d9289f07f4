"""Stand-in for k_diffusion/sampling.py: noise schedules and the fixed-step samplers the WebUI offers.

Written for this stand-in from the papers - Karras et al. 2022 (*Elucidating the Design Space of Diffusion-Based
Generative Models*, arXiv 2206.00364) for the schedule, Euler, Heun, DPM2 and the ancestral step; Lu et al. 2022/2023
(*DPM-Solver*, *DPM-Solver++*, arXiv 2206.00927 / 2211.01095) for DPM++ 2S, 2M and SDE; linear multistep theory for
LMS. What the extension can observe is kept as k-diffusion (as vendored by WebUI v1.10.1) behaves:

* the function names and signatures (the WebUI picks keyword arguments by inspecting them);
* the noise level of every model evaluation and their order;
* ``callback`` fires once per step, right after the step's first evaluation and before any second one, with the
  keys ``x``, ``i``, ``sigma``, ``sigma_hat`` and ``denoised``;
* a step to sigma 0 is a plain Euler step (one evaluation) for the two-evaluation samplers;
* random numbers come from ``torch.randn_like`` of this module's global ``torch``, which the WebUI replaces by
  ``TorchHijack(p)`` so that sampler noise comes from the per-seed ``p.rng``, drawn in the same order.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from k_diffusion import utils
from k_diffusion.utils import append_zero

# --- schedules ------------------------------------------------------------------------------------------------------


def get_sigmas_karras(n: int, sigma_min: float, sigma_max: float, rho: float = 7.0, device="cpu") -> torch.Tensor:
    """Karras et al. 2022, eq. 5: n levels evenly spaced in sigma^(1/rho) from sigma_max to sigma_min, then 0."""
    top, bottom = sigma_max ** (1 / rho), sigma_min ** (1 / rho)
    fraction = torch.linspace(0, 1, n, device=device)
    levels = (top + fraction * (bottom - top)) ** rho
    return append_zero(levels).to(device)


def get_sigmas_exponential(n: int, sigma_min: float, sigma_max: float, device="cpu") -> torch.Tensor:
    """n levels evenly spaced in log sigma from sigma_max to sigma_min, then 0 (k-diffusion's 'exponential')."""
    return append_zero(torch.exp(torch.linspace(math.log(sigma_max), math.log(sigma_min), n, device=device)))


def get_sigmas_polyexponential(
    n: int, sigma_min: float, sigma_max: float, rho: float = 1.0, device="cpu"
) -> torch.Tensor:
    """log sigma = log sigma_min + u^rho (log sigma_max - log sigma_min) for u from 1 to 0 (rho 1: exponential)."""
    log_low, log_high = math.log(sigma_min), math.log(sigma_max)
    u = torch.linspace(1, 0, n, device=device).pow(rho)
    return append_zero((log_low + u * (log_high - log_low)).exp())


# --- building blocks ------------------------------------------------------------------------------------------------


def to_d(x: torch.Tensor, sigma: torch.Tensor, denoised: torch.Tensor) -> torch.Tensor:
    """dx/dsigma of the probability-flow ODE of Karras et al. (eq. 3 with sigma(t) = t): (x - D(x)) / sigma."""
    return (x - denoised) / utils.append_dims(sigma, x.ndim)


def get_ancestral_step(sigma_from, sigma_to, eta: float = 1.0):
    """Split a step from sigma_from to sigma_to into a deterministic move down to ``sigma_down`` and fresh noise of
    size ``sigma_up``, with sigma_down^2 + sigma_up^2 = sigma_to^2. eta 1 is DDPM's posterior noise
    (sigma_up^2 = sigma_to^2 (1 - sigma_to^2 / sigma_from^2)); eta 0 is the deterministic step."""
    if not eta:
        return sigma_to, 0.0
    posterior_var = sigma_to**2 * (1 - sigma_to**2 / sigma_from**2)
    sigma_up = min(sigma_to, eta * posterior_var**0.5)
    return (sigma_to**2 - sigma_up**2) ** 0.5, sigma_up


def default_noise_sampler(x: torch.Tensor):
    """Independent standard normal noise shaped like x for any interval, from the (hijackable) module-global torch."""

    def draw(sigma, sigma_next):
        return torch.randn_like(x)

    return draw


class BrownianTreeNoiseSampler:
    """Interface and per-seed determinism of k-diffusion's BrownianTreeNoiseSampler (used by the SDE samplers).

    Stand-in: instead of a torchsde Brownian tree, the normalised increment of the interval (sigma, sigma_next) is
    drawn from a generator seeded by (seed of the batch item, interval), so it is deterministic per seed and
    independent of the batch size, like the WebUI's seeded tree.
    """

    def __init__(self, x: torch.Tensor, sigma_min, sigma_max, seed=None, transform=lambda x: x, cpu: bool = False):
        self.shape = tuple(x.shape)
        self.dtype, self.device = x.dtype, x.device
        if seed is None:
            seed = torch.randint(0, 2**31 - 1, []).item()
        many = isinstance(seed, (list, tuple))
        self.seeds = list(seed) if many else [seed for _ in range(self.shape[0])]

    def _generator(self, seed, interval) -> torch.Generator:
        key = (int(seed) * 1_000_003 + hash(interval)) % (2**63 - 1)
        return torch.Generator(device="cpu").manual_seed(key)

    def __call__(self, sigma, sigma_next) -> torch.Tensor:
        interval = (round(float(sigma), 6), round(float(sigma_next), 6))
        rows = [torch.randn(self.shape[1:], generator=self._generator(seed, interval)) for seed in self.seeds]
        return torch.stack(rows).to(self.device, self.dtype)


class _Pass:
    """One sampling call: evaluates the denoiser at a level for the whole batch and reports steps to the callback."""

    def __init__(self, model, x: torch.Tensor, extra_args, callback) -> None:
        self.model = model
        self.extra_args = extra_args or {}
        self.callback = callback
        self.ones = x.new_ones([x.shape[0]])

    def denoise(self, x: torch.Tensor, sigma) -> torch.Tensor:
        return self.model(x, sigma * self.ones, **self.extra_args)

    def report(self, i: int, x, sigma, denoised, sigma_hat=None) -> None:
        if self.callback is None:
            return
        level_hat = sigma if sigma_hat is None else sigma_hat
        self.callback({"x": x, "i": i, "sigma": sigma, "sigma_hat": level_hat, "denoised": denoised})


def _intervals(sigmas: torch.Tensor):
    """(step index, level at its start, level at its end) for every step of a schedule."""
    return ((i, sigmas[i], sigmas[i + 1]) for i in range(len(sigmas) - 1))


def _churn(x, sigma, steps: int, s_churn, s_tmin, s_tmax, s_noise):
    """Karras et al. 2022, Algorithm 2, lines 4-6: within [s_tmin, s_tmax] raise the level to
    sigma_hat = sigma (1 + gamma), gamma = min(s_churn / steps, sqrt 2 - 1), by adding noise of variance
    sigma_hat^2 - sigma^2. Returns (x, sigma_hat)."""
    gamma = min(s_churn / steps, 2**0.5 - 1) if s_tmin <= sigma <= s_tmax else 0.0
    sigma_hat = sigma * (gamma + 1)
    if gamma > 0:
        fresh = torch.randn_like(x) * s_noise
        x = x + fresh * (sigma_hat**2 - sigma**2) ** 0.5
    return x, sigma_hat


def _euler(x, slope, sigma, sigma_to):
    """Euler step of the ODE from sigma to sigma_to."""
    return x + slope * (sigma_to - sigma)


def _data_step(x, denoised, sigma, sigma_to):
    """First-order DPM-Solver++ step (Lu et al. 2022b, eq. 9 with k = 1) from sigma to sigma_to > 0: exact when the
    data prediction stays ``denoised``. With lambda = -log sigma and h = lambda_to - lambda it is
    x (sigma_to / sigma) + (1 - e^-h) denoised."""
    h = sigma.log() - sigma_to.log()
    return x * torch.exp(-h) - torch.expm1(-h) * denoised


def _noise_in(noise_sampler, x, sigma, sigma_next, scale):
    return x + noise_sampler(sigma, sigma_next) * scale


# --- Karras et al. 2022: Euler, Heun, DPM2 (Algorithm 2 with their second-order corrections) ------------------------


def _heun_correction(run: _Pass, x, slope, sigma_hat, sigma_next):
    """Heun's method: average the slope at the start with the slope at the Euler prediction (Algorithm 2, l. 9-11)."""
    predicted = _euler(x, slope, sigma_hat, sigma_next)
    slope_end = to_d(predicted, sigma_next, run.denoise(predicted, sigma_next))
    return _euler(x, (slope + slope_end) / 2, sigma_hat, sigma_next)


def _midpoint_correction(run: _Pass, x, slope, sigma_hat, sigma_next):
    """DPM-Solver-2 as Karras et al. use it: the slope at the geometric midpoint of the two levels, applied over the
    whole step."""
    sigma_mid = (sigma_hat.log() + sigma_next.log()).div(2).exp()
    at_mid = _euler(x, slope, sigma_hat, sigma_mid)
    slope_mid = to_d(at_mid, sigma_mid, run.denoise(at_mid, sigma_mid))
    return _euler(x, slope_mid, sigma_hat, sigma_next)


def _karras_sampler(model, x, sigmas, extra_args, callback, churn_args, correction):
    """Algorithm 2 of Karras et al.: churn, evaluate at sigma_hat, report, then a first-order step or ``correction``
    (a second evaluation at a lower level). The step to sigma 0 is always first order."""
    run = _Pass(model, x, extra_args, callback)
    steps = len(sigmas) - 1
    for i, sigma, sigma_next in _intervals(sigmas):
        x, sigma_hat = _churn(x, sigma, steps, *churn_args)
        denoised = run.denoise(x, sigma_hat)
        slope = to_d(x, sigma_hat, denoised)
        run.report(i, x, sigma, denoised, sigma_hat)
        if correction is None or sigma_next == 0:
            x = _euler(x, slope, sigma_hat, sigma_next)
        else:
            x = correction(run, x, slope, sigma_hat, sigma_next)
    return x


@torch.no_grad()
def sample_euler(
    model,
    x,
    sigmas,
    extra_args=None,
    callback=None,
    disable=None,
    s_churn=0.0,
    s_tmin=0.0,
    s_tmax=float("inf"),
    s_noise=1.0,
):
    """Models k-diffusion's sample_euler: one evaluation per step (at sigma_hat, sigma itself without churn)."""
    return _karras_sampler(model, x, sigmas, extra_args, callback, (s_churn, s_tmin, s_tmax, s_noise), None)


@torch.no_grad()
def sample_heun(
    model,
    x,
    sigmas,
    extra_args=None,
    callback=None,
    disable=None,
    s_churn=0.0,
    s_tmin=0.0,
    s_tmax=float("inf"),
    s_noise=1.0,
):
    """Models k-diffusion's sample_heun: a second evaluation at sigmas[i+1] after the callback; the last step (to
    sigma 0) has one evaluation."""
    churn = (s_churn, s_tmin, s_tmax, s_noise)
    return _karras_sampler(model, x, sigmas, extra_args, callback, churn, _heun_correction)


@torch.no_grad()
def sample_dpm_2(
    model,
    x,
    sigmas,
    extra_args=None,
    callback=None,
    disable=None,
    s_churn=0.0,
    s_tmin=0.0,
    s_tmax=float("inf"),
    s_noise=1.0,
):
    """Models k-diffusion's sample_dpm_2: a second evaluation at the log-midpoint level; the last step has one."""
    churn = (s_churn, s_tmin, s_tmax, s_noise)
    return _karras_sampler(model, x, sigmas, extra_args, callback, churn, _midpoint_correction)


# --- ancestral samplers ---------------------------------------------------------------------------------------------


def _ancestral_sampler(model, x, sigmas, extra_args, callback, eta, s_noise, noise_sampler, move):
    """Evaluate at sigma, report, move deterministically to sigma_down with ``move`` (which may evaluate once more),
    then add s_noise * sigma_up of noise unless the step ends at 0."""
    run = _Pass(model, x, extra_args, callback)
    noise_sampler = default_noise_sampler(x) if noise_sampler is None else noise_sampler
    for i, sigma, sigma_next in _intervals(sigmas):
        denoised = run.denoise(x, sigma)
        sigma_down, sigma_up = get_ancestral_step(sigma, sigma_next, eta=eta)
        run.report(i, x, sigma, denoised)
        if sigma_down == 0 or move is None:
            x = _euler(x, to_d(x, sigma, denoised), sigma, sigma_down)
        else:
            x = move(run, x, denoised, sigma, sigma_down)
        if sigma_next > 0:
            x = _noise_in(noise_sampler, x, sigma, sigma_next, s_noise * sigma_up)
    return x


def _dpm2_move(run: _Pass, x, denoised, sigma, sigma_down):
    return _midpoint_correction(run, x, to_d(x, sigma, denoised), sigma, sigma_down)


def _dpmpp_2s_move(run: _Pass, x, denoised, sigma, sigma_down):
    """DPM-Solver++(2S) (Lu et al. 2022b, Algorithm 1 with r = 1/2): a first-order step to the log-midpoint level,
    a second evaluation there, then the whole step with that data prediction."""
    sigma_mid = (sigma * sigma_down).sqrt()
    at_mid = _data_step(x, denoised, sigma, sigma_mid)
    return _data_step(x, run.denoise(at_mid, sigma_mid), sigma, sigma_down)


@torch.no_grad()
def sample_euler_ancestral(
    model, x, sigmas, extra_args=None, callback=None, disable=None, eta=1.0, s_noise=1.0, noise_sampler=None
):
    """Models k-diffusion's sample_euler_ancestral: one evaluation per step, an Euler step to sigma_down, noise."""
    return _ancestral_sampler(model, x, sigmas, extra_args, callback, eta, s_noise, noise_sampler, None)


@torch.no_grad()
def sample_dpm_2_ancestral(
    model, x, sigmas, extra_args=None, callback=None, disable=None, eta=1.0, s_noise=1.0, noise_sampler=None
):
    """Models k-diffusion's sample_dpm_2_ancestral: second evaluation at the log-midpoint of sigma and sigma_down."""
    return _ancestral_sampler(model, x, sigmas, extra_args, callback, eta, s_noise, noise_sampler, _dpm2_move)


@torch.no_grad()
def sample_dpmpp_2s_ancestral(
    model, x, sigmas, extra_args=None, callback=None, disable=None, eta=1.0, s_noise=1.0, noise_sampler=None
):
    """Models k-diffusion's sample_dpmpp_2s_ancestral: second evaluation at sqrt(sigma * sigma_down)."""
    return _ancestral_sampler(model, x, sigmas, extra_args, callback, eta, s_noise, noise_sampler, _dpmpp_2s_move)


# --- linear multistep -----------------------------------------------------------------------------------------------


def linear_multistep_coeff(order: int, t, i: int, j: int) -> float:
    """Adams-Bashforth weight of the slope at t[i - j] for the step t[i] -> t[i + 1]: the integral over the step of
    the Lagrange basis polynomial through t[i], ..., t[i - order + 1] that is 1 at t[i - j] (integrated exactly)."""
    if order - 1 > i:
        raise ValueError(f"Order {order} too high for step {i}")
    nodes = [float(t[i - k]) for k in range(order)]
    basis = np.polynomial.Polynomial([1.0])
    for k, node in enumerate(nodes):
        if k != j:
            basis = basis * np.polynomial.Polynomial([-node, 1.0]) / (nodes[j] - node)
    antiderivative = basis.integ()
    return float(antiderivative(float(t[i + 1])) - antiderivative(float(t[i])))


@torch.no_grad()
def sample_lms(model, x, sigmas, extra_args=None, callback=None, disable=None, order=4):
    """Models k-diffusion's sample_lms: one evaluation per step; the step combines the last (up to ``order``)
    slopes with Adams-Bashforth weights on the (non-uniform) sigma grid."""
    run = _Pass(model, x, extra_args, callback)
    grid = sigmas.detach().cpu().numpy()
    recent: list[torch.Tensor] = []  # newest first
    for i, sigma, _ in _intervals(sigmas):
        denoised = run.denoise(x, sigma)
        recent = [to_d(x, sigma, denoised), *recent][:order]
        run.report(i, x, sigma, denoised)
        used = len(recent)
        x = x + sum(linear_multistep_coeff(used, grid, i, j) * slope for j, slope in enumerate(recent))
    return x


# --- DPM-Solver++ ---------------------------------------------------------------------------------------------------


@torch.no_grad()
def sample_dpmpp_sde(
    model, x, sigmas, extra_args=None, callback=None, disable=None, eta=1.0, s_noise=1.0, noise_sampler=None, r=1 / 2
):
    """Models k-diffusion's sample_dpmpp_sde (DPM-Solver++ SDE, two stages): the first evaluation at sigmas[i] (the
    callback after it), the second at the level a fraction r of the step along lambda = -log sigma
    (sqrt(sigma_i sigma_{i+1}) for r = 1/2); each stage is an ancestral data-prediction step with Brownian noise.
    The last step (to 0) is an Euler step with one evaluation."""
    if len(sigmas) <= 1:
        return x
    if noise_sampler is None:
        seed = (extra_args or {}).get("seed", None)
        noise_sampler = BrownianTreeNoiseSampler(x, sigmas[sigmas > 0].min(), sigmas.max(), seed=seed, cpu=True)
    run = _Pass(model, x, extra_args, callback)
    weight_2 = 1 / (2 * r)

    def level(lam):  # sigma of lambda = -log sigma
        return lam.neg().exp()

    for i, sigma, sigma_next in _intervals(sigmas):
        denoised = run.denoise(x, sigma)
        run.report(i, x, sigma, denoised)
        if sigma_next == 0:
            x = _euler(x, to_d(x, sigma, denoised), sigma, sigma_next)
            continue
        lam, lam_next = sigma.log().neg(), sigma_next.log().neg()
        h = lam_next - lam
        here, there = level(lam), level(lam_next)
        stage = level(lam + h * r)
        down, up = get_ancestral_step(here, stage, eta)
        staged = _noise_in(noise_sampler, _data_step(x, denoised, here, down), here, stage, s_noise * up)
        blended = torch.lerp(denoised, run.denoise(staged, stage), weight_2)
        down, up = get_ancestral_step(here, there, eta)
        x = _noise_in(noise_sampler, _data_step(x, blended, here, down), here, there, s_noise * up)
    return x


@torch.no_grad()
def sample_dpmpp_2m(model, x, sigmas, extra_args=None, callback=None, disable=None):
    """Models k-diffusion's sample_dpmpp_2m (DPM-Solver++(2M), Lu et al. 2022b, Algorithm 2): one evaluation per step;
    from the second step on the data prediction is extrapolated from the previous one, with r = h_prev / h:
    D = (1 + 1/(2r)) D_i - 1/(2r) D_{i-1}. The first step and the step to 0 are first order."""
    run = _Pass(model, x, extra_args, callback)
    previous = None  # (denoised, lambda step) of the step before
    for i, sigma, sigma_next in _intervals(sigmas):
        denoised = run.denoise(x, sigma)
        run.report(i, x, sigma, denoised)
        h = sigma.log() - sigma_next.log()
        used = denoised
        if previous is not None and sigma_next != 0:
            denoised_prev, h_prev = previous
            half_over_r = h / (2 * h_prev)
            used = denoised * (1 + half_over_r) - denoised_prev * half_over_r
        x = x * torch.exp(-h) - torch.expm1(-h) * used
        previous = (denoised, h)
    return x


# Solvers kept in their own module, re-exported here where the WebUI looks samplers up by name.
from k_diffusion.extra_solvers import (  # noqa: E402, F401
    sample_dpm_adaptive,
    sample_dpm_fast,
    sample_dpmpp_2m_sde,
    sample_dpmpp_3m_sde,
)
