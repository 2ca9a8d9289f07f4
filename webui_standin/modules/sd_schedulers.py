"""Stand-in for modules/sd_schedulers.py (v1.10.1 'Schedule type' dropdown)."""

from __future__ import annotations

import dataclasses
from typing import Any

import k_diffusion
import torch
from modules import standin_schedulers_extra as extra


@dataclasses.dataclass
class Scheduler:
    """mirrors modules/sd_schedulers.py Scheduler."""

    name: str
    label: str
    function: Any
    default_rho: float = -1
    need_inner_model: bool = False
    aliases: list | None = None


def uniform(n, sigma_min, sigma_max, inner_model, device):  # mirrors sd_schedulers.uniform (the discrete schedule)
    return inner_model.get_sigmas(n).to(device)


def sgm_uniform(n, sigma_min, sigma_max, inner_model, device):  # mirrors sd_schedulers.sgm_uniform
    start = inner_model.sigma_to_t(torch.tensor(sigma_max))
    end = inner_model.sigma_to_t(torch.tensor(sigma_min))
    sigs = [inner_model.t_to_sigma(ts) for ts in torch.linspace(start, end, n + 1)[:-1]]
    sigs += [0.0]
    return torch.FloatTensor(sigs).to(device)


schedulers: list[Scheduler] = [
    Scheduler("automatic", "Automatic", None),
    Scheduler("uniform", "Uniform", uniform, need_inner_model=True),
    Scheduler("karras", "Karras", k_diffusion.sampling.get_sigmas_karras, default_rho=7.0),
    Scheduler("exponential", "Exponential", k_diffusion.sampling.get_sigmas_exponential),
    Scheduler("polyexponential", "Polyexponential", k_diffusion.sampling.get_sigmas_polyexponential, default_rho=1.0),
    Scheduler("sgm_uniform", "SGM Uniform", sgm_uniform, need_inner_model=True, aliases=["SGMUniform"]),
    Scheduler("kl_optimal", "KL Optimal", extra.kl_optimal),
    Scheduler("align_your_steps", "Align Your Steps", extra.get_align_your_steps_sigmas),
    Scheduler("simple", "Simple", extra.simple_scheduler, need_inner_model=True),
    Scheduler("normal", "Normal", extra.normal_scheduler, need_inner_model=True),
    Scheduler("ddim", "DDIM", extra.ddim_scheduler, need_inner_model=True),
    Scheduler("beta", "Beta", extra.beta_scheduler, need_inner_model=True),
]
schedulers_map: dict[str, Scheduler] = {**{x.name: x for x in schedulers}, **{x.label: x for x in schedulers}}
"""mirrors sd_schedulers.schedulers_map (keys: names and labels)"""
