"""Stand-in for modules/sd_samplers_extra.py (v1.10.1): the 'Restart' sampler.

Restart sampling (Xu et al., *Restart Sampling for Improving Generative Processes*, arXiv 2306.14878): Heun steps
down the schedule, and once the schedule reaches a low noise level, noise is added back to jump up to a higher level
and that stretch is solved again. Written for this stand-in from the paper and the WebUI's observable behaviour (which
levels are evaluated, in which order, when the step callback fires); no WebUI code was used.
"""

from __future__ import annotations

import k_diffusion.sampling
import torch


def _nearest_index(sigmas: torch.Tensor, value: float) -> int:
    return int(torch.argmin((sigmas - value).abs()))


def _karras_without_zero(n: int, low: float, high: float, device) -> torch.Tensor:
    return k_diffusion.sampling.get_sigmas_karras(n, low, high, device=device)[:-1]


def restart_segments(sigmas: torch.Tensor, restart_list: dict | None = None) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """The (sigma_from, sigma_to) pairs the sampler steps through, restarts included.

    ``restart_list`` maps a noise level to ``[points, times, upper level]``: after the main schedule reaches the
    sigma nearest that level, a Karras run of ``points`` levels from the sigma nearest ``upper level`` down to it is
    solved again ``times`` times. Without a list, schedules of 20 or more steps get one: the main schedule is
    recomputed as a Karras schedule with fewer steps (``steps - k * times``) between the given end points, and the
    restart stretch (k = 9 steps once; from 36 steps k = steps // 4, twice) goes from sigma ~2 back down to ~0.1;
    shorter schedules are solved as given, with no restart."""
    steps = len(sigmas) - 1
    if restart_list is None:
        restart_list = {}
        if steps >= 20:
            k, times = (steps // 4, 2) if steps >= 36 else (9, 1)
            sigmas = k_diffusion.sampling.get_sigmas_karras(
                steps - k * times, sigmas[-2].item(), sigmas[0].item(), device=sigmas.device
            )
            restart_list = {0.1: [k + 1, times, 2]}
    restarts = {_nearest_index(sigmas, level): plan for level, plan in restart_list.items()}

    segments = []
    for i in range(len(sigmas) - 1):
        segments.append((sigmas[i], sigmas[i + 1]))
        plan = restarts.get(i + 1)
        if plan is None:
            continue
        points, times, upper = plan
        top = _nearest_index(sigmas, upper)
        if top >= i + 1:
            continue
        levels = _karras_without_zero(points, sigmas[i + 1].item(), sigmas[top].item(), sigmas.device)
        stretch = list(zip(levels[:-1], levels[1:], strict=True))
        segments.extend(stretch * times)
    return segments


@torch.no_grad()
def restart_sampler(model, x, sigmas, extra_args=None, callback=None, disable=None, s_noise=1.0, restart_list=None):
    """mirrors sd_samplers_extra.restart_sampler: one Heun step per segment (evaluations at sigma_from and, unless
    sigma_to is 0, at sigma_to); the callback fires after a segment's first evaluation with the segment's index.
    Entering a segment that starts above the level reached so far adds fresh noise to make up the difference."""
    extra_args = {} if extra_args is None else extra_args
    batch_ones = x.new_ones([x.shape[0]])
    reached = None
    for index, (high, low) in enumerate(restart_segments(sigmas, restart_list)):
        if reached is not None and reached < high:
            noise = k_diffusion.sampling.torch.randn_like(x)
            x = x + noise * s_noise * (high**2 - reached**2) ** 0.5
        denoised = model(x, high * batch_ones, **extra_args)
        slope = (x - denoised) / high
        if callback is not None:
            callback({"x": x, "i": index, "sigma": low, "sigma_hat": high, "denoised": denoised})
        step = low - high
        if low == 0:
            x = x + slope * step
        else:
            guess = x + slope * step
            slope_end = (guess - model(guess, low * batch_ones, **extra_args)) / low
            x = x + (slope + slope_end) / 2 * step
        reached = low
    return x
