"""Stand-in for modules/sd_samplers_timesteps_impl.py: DDIM and PLMS on the model's discrete timesteps.

Written from the papers: DDIM is Song et al. 2021 (*Denoising Diffusion Implicit Models*, eq. 12), PLMS the pseudo
linear multistep method of Liu et al. 2022 (*Pseudo Numerical Methods for Diffusion Models on Manifolds*): the DDIM
update as the "transfer" part, its noise estimate replaced by a pseudo improved Euler average on the first step and
Adams-Bashforth combinations of earlier estimates afterwards.

Facts kept as in WebUI v1.10.1: ``timesteps`` ascends (e.g. 1, 51, ..., 951); the samplers walk it from the last entry
down to the second (len - 1 steps), each step going to the entry below it; the model (the CFG denoiser) gets the
timestep itself as its ``sigma``; the callback fires after each step's update, with ``sigma`` 0; DDIM draws one
noise tensor per step from ``k_diffusion.sampling.torch`` (the WebUI's per-seed TorchHijack) whatever eta is.
"""

from __future__ import annotations

import math

import k_diffusion.sampling
import torch

# Adams-Bashforth weights (numerators newest first, denominator) by the number of noise estimates combined
_ADAMS_BASHFORTH = {2: ((3, -1), 2), 3: ((23, -16, 5), 12), 4: ((55, -59, 37, -9), 24)}


def _walk(model, timesteps):
    """(step i, timestep, timestep below it, alpha_bar there, alpha_bar below) from the top of ``timesteps`` down."""
    alpha_bar = model.inner_model.inner_model.alphas_cumprod
    count = len(timesteps)
    for i in range(count - 1):
        t, t_below = timesteps[count - 1 - i], timesteps[count - 2 - i]
        yield i, t, t_below, float(alpha_bar[t]), float(alpha_bar[t_below])


def _x0_from_eps(x, eps, a_t: float):
    """Song et al. eq. 12, the "predicted x0": (x - sqrt(1 - a_t) eps) / sqrt(a_t)."""
    return (x - math.sqrt(1 - a_t) * eps) / math.sqrt(a_t)


def _ddim_update(x0, eps, a_prev: float, spread: float = 0.0, noise=None):
    """Song et al. eq. 12: sqrt(a_prev) x0 + sqrt(1 - a_prev - spread^2) eps (+ spread * noise)."""
    out = math.sqrt(a_prev) * x0 + math.sqrt(1 - a_prev - spread**2) * eps
    return out if noise is None else out + spread * noise


@torch.no_grad()
def ddim(model, x, timesteps, extra_args=None, callback=None, disable=None, eta=0.0):
    """Models the WebUI's ddim: one evaluation per step at the timestep; eta scales the stochastic part,
    spread = eta sqrt((1 - a_prev) / (1 - a_t) (1 - a_t / a_prev)) (eta 0: deterministic DDIM)."""
    extra_args = extra_args or {}
    batch = x.new_ones(x.shape[0])
    for i, t, _, a_t, a_prev in _walk(model, timesteps):
        eps = model(x, t.item() * batch, **extra_args)
        spread = eta * math.sqrt((1 - a_prev) / (1 - a_t) * (1 - a_t / a_prev))
        x0 = _x0_from_eps(x, eps, a_t)
        x = _ddim_update(x0, eps, a_prev, spread, k_diffusion.sampling.torch.randn_like(x))
        if callback is not None:
            callback({"x": x, "i": i, "sigma": 0, "sigma_hat": 0, "denoised": x0})
    return x


@torch.no_grad()
def plms(model, x, timesteps, extra_args=None, callback=None, disable=None):
    """Models the WebUI's plms: the first step evaluates twice (at its timestep, then at the one below on the DDIM
    transfer of x), averaging the two estimates; later steps evaluate once and combine the estimate with up to three
    earlier ones (the raw estimates, not the combined ones) by Adams-Bashforth weights."""
    extra_args = extra_args or {}
    batch = x.new_ones([x.shape[0]])
    history: list[torch.Tensor] = []  # raw noise estimates of earlier steps, newest first
    for i, t, t_below, a_t, a_prev in _walk(model, timesteps):
        eps = model(x, t.item() * batch, **extra_args)
        if history:
            weights, denominator = _ADAMS_BASHFORTH[len(history) + 1]
            combined = sum(w * e for w, e in zip(weights, [eps, *history], strict=True)) / denominator
        else:
            transferred = _ddim_update(_x0_from_eps(x, eps, a_t), eps, a_prev)
            combined = (eps + model(transferred, t_below.item() * batch, **extra_args)) / 2
        history = [eps, *history][:3]
        x0 = _x0_from_eps(x, combined, a_t)
        x = _ddim_update(x0, combined, a_prev)
        if callback is not None:
            callback({"x": x, "i": i, "sigma": 0, "sigma_hat": 0, "denoised": x0})
    return x
