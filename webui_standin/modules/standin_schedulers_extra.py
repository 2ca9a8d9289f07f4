"""Stand-in for the 'Schedule type' entries of modules/sd_schedulers.py (v1.10.1) that are neither the discrete nor
the k-diffusion closed-form schedules: KL Optimal, Align Your Steps, Simple, Normal, DDIM and Beta.

Written for this stand-in from the schedules' definitions and the WebUI's observable results (the sigmas each returns
for a given step count, including when that is not n + 1 values); no WebUI code was used. Every function takes the
arguments KDiffusionSampler.get_sigmas passes (n, sigma_min, sigma_max, device, and inner_model where the scheduler
needs the model's discrete sigma table, which is ascending: sigmas[t] is the sigma of training timestep t).
"""

from __future__ import annotations

import math

import numpy as np
import torch
from modules import shared

# Align Your Steps (Sabour et al., arXiv 2404.14507): NVIDIA's published 10-step schedules, 11 levels each.
AYS_SD1 = [14.615, 6.475, 3.861, 2.697, 1.886, 1.396, 0.963, 0.652, 0.399, 0.152, 0.029]
AYS_SDXL = [14.615, 6.315, 3.771, 2.181, 1.342, 0.862, 0.555, 0.380, 0.234, 0.113, 0.029]


def _with_zero(values, device) -> torch.Tensor:
    return torch.tensor([float(v) for v in values] + [0.0], dtype=torch.float32, device=device)


def kl_optimal(n, sigma_min, sigma_max, device):
    """KL-optimal schedule: equal steps in atan(sigma) from sigma_max to sigma_min, n + 1 values. It ends at
    sigma_min itself; no 0 is appended (the last step goes to sigma_min)."""
    top, bottom = math.atan(float(sigma_max)), math.atan(float(sigma_min))
    return torch.tensor([math.tan(top + (bottom - top) * i / n) for i in range(n + 1)], device=device)


def get_align_your_steps_sigmas(n, sigma_min, sigma_max, device):
    """Align Your Steps: the SD1 or SDXL table (by the loaded model). For n equal to the table's length (11) the
    table itself is used; otherwise n levels spread evenly over it, interpolated linearly in log(sigma). A 0 is
    appended either way. sigma_min and sigma_max are ignored."""
    table = AYS_SDXL if getattr(shared.sd_model, "is_sdxl", False) else AYS_SD1
    if n == len(table):
        return _with_zero(table, device)
    rising_logs = np.log(np.asarray(table[::-1], dtype=np.float64))  # lowest level first
    where = np.linspace(0, len(table) - 1, n)
    picked = np.exp(np.interp(where, np.arange(len(table)), rising_logs))
    return _with_zero(picked[::-1], device)


def simple_scheduler(n, sigma_min, sigma_max, inner_model, device):
    """'Simple': n table sigmas taken every 1000/n timesteps down from the top (timestep 999 - floor(i * 1000 / n)),
    then 0."""
    table = inner_model.sigmas
    stride = len(table) / n
    return _with_zero([table[len(table) - 1 - int(i * stride)] for i in range(n)], device)


def normal_scheduler(n, sigma_min, sigma_max, inner_model, device, sgm=False, floor=False):
    """'Normal': n levels equally spaced in (fractional) timestep between the timesteps of sigma_max and sigma_min,
    both included (with sgm=True: n + 1 spaced levels without the last), then 0."""
    first = inner_model.sigma_to_t(torch.tensor(sigma_max))
    last = inner_model.sigma_to_t(torch.tensor(sigma_min))
    first, last = float(first), float(last)
    times = torch.linspace(first, last, n + 1)[:-1] if sgm else torch.linspace(first, last, n)
    return _with_zero([inner_model.t_to_sigma(t) for t in times], device)


def ddim_scheduler(n, sigma_min, sigma_max, inner_model, device):
    """'DDIM': the table sigmas of timesteps 1, 1 + k, 1 + 2k, ... below 1000, k = max(1000 // n, 1), highest first,
    then 0. That is n levels only when k divides evenly enough: e.g. n = 7 (k = 142) gives 8 levels (8 steps)."""
    table = inner_model.sigmas
    stride = max(len(table) // n, 1)
    return _with_zero([table[t] for t in range(1, len(table), stride)][::-1], device)


def _log_beta_function(a: float, b: float) -> float:
    return math.lgamma(a) + math.lgamma(b) - math.lgamma(a + b)


def _incomplete_beta_fraction(x: float, a: float, b: float) -> float:
    """Continued fraction 1 + d1/(1 + d2/(1 + ...)) of the regularized incomplete beta function, with
    d(2m+1) = -(a+m)(a+b+m)x / ((a+2m)(a+2m+1)) and d(2m) = m(b-m)x / ((a+2m-1)(a+2m)); evaluated by the modified
    Lentz method."""
    tiny = 1e-300
    value, c, d = 1.0, 1.0, 0.0
    for j in range(1, 400):
        m = j // 2
        if j % 2:
            coefficient = -(a + m) * (a + b + m) * x / ((a + 2 * m) * (a + 2 * m + 1))
        else:
            coefficient = m * (b - m) * x / ((a + 2 * m - 1) * (a + 2 * m))
        d = 1.0 + coefficient * d
        d = 1.0 / (d if abs(d) > tiny else tiny)
        c = 1.0 + coefficient / c
        c = c if abs(c) > tiny else tiny
        value *= c * d
        if abs(c * d - 1.0) < 1e-15:
            break
    return value


def beta_cdf(x: float, a: float, b: float) -> float:
    """Regularized incomplete beta function I_x(a, b), the CDF of Beta(a, b)."""
    if x <= 0:
        return 0.0
    if x >= 1:
        return 1.0
    if x > (a + 1) / (a + b + 2):
        return 1.0 - beta_cdf(1.0 - x, b, a)
    front = math.exp(a * math.log(x) + b * math.log1p(-x) - _log_beta_function(a, b)) / a
    return front / _incomplete_beta_fraction(x, a, b)


def beta_ppf(q: float, a: float, b: float) -> float:
    """Quantile of Beta(a, b), by bisection on the CDF."""
    if q <= 0:
        return 0.0
    if q >= 1:
        return 1.0
    low, high = 0.0, 1.0
    for _ in range(100):
        mid = (low + high) / 2
        if beta_cdf(mid, a, b) < q:
            low = mid
        else:
            high = mid
    return (low + high) / 2


def beta_scheduler(n, sigma_min, sigma_max, inner_model, device):
    """'Beta' (Lee et al., *Beta Sampling is All You Need*, arXiv 2407.12173): n levels at the Beta(alpha, beta)
    quantiles of 1, (n-2)/(n-1), ..., 0 mapped linearly onto [sigma_min, sigma_max] (options beta_dist_alpha and
    beta_dist_beta, both 0.6 by default), then 0."""
    a, b = float(shared.opts.beta_dist_alpha), float(shared.opts.beta_dist_beta)
    quantiles = [beta_ppf(1.0 - float(q), a, b) for q in np.linspace(0, 1, n)]
    return _with_zero([sigma_min + q * (sigma_max - sigma_min) for q in quantiles], device)
