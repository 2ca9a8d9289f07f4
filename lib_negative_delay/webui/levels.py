"""Noise levels in the WebUI: the reference schedule a delay is read against, and the level of an evaluation.

k-diffusion samplers pass a sigma to the denoiser; the timestep samplers (DDIM, DDIM CFG++, PLMS, UniPC)
pass a model timestep instead.  Both are compared as sigmas (``TimestepScale``), so a hires pass may use a
sampler of the other family than the first pass.
"""

from __future__ import annotations

from typing import Any

from lib_negative_delay.schedule import Reference, TimestepScale, unipc_levels


def funcname(sampler: Any) -> str | None:
    """The sampler's function name (``sample_euler``, ``plms``, ``restart_sampler``, …), if any."""
    name = getattr(sampler, "funcname", None)
    if name is not None and not isinstance(name, str):
        name = getattr(name, "__name__", None)
    return name


def sampler_name(sampler: Any, p: Any) -> str | None:
    config = getattr(sampler, "config", None)
    return getattr(config, "name", None) or getattr(p, "sampler_name", None)


def is_timestep_sampler(sampler: Any) -> bool:
    """DDIM/PLMS/UniPC-style samplers: ``params.sigma`` holds the model timestep."""
    return callable(getattr(sampler, "get_timesteps", None))


def timestep_scale(model: Any) -> TimestepScale:
    return TimestepScale([float(a) for a in model.alphas_cumprod.detach().cpu().flatten()])


def reference(p: Any, sampler: Any, model: Any, steps: int) -> Reference:
    """Levels at the start of each step of a txt2img run of ``sampler`` with ``steps`` steps and ``p``'s
    scheduler (the first pass's, also when called during the hires pass).

    Asks the sampler for its own schedule (``get_sigmas`` / ``get_timesteps``), then undoes what that call
    writes into the infotext, so nothing the user sees changes.
    """
    from modules import shared

    saved_params = dict(p.extra_generation_params)
    was_hires = getattr(p, "is_hr_pass", False)
    try:
        p.is_hr_pass = False
        if is_timestep_sampler(sampler):
            scale = timestep_scale(model)
            timesteps = sorted(float(t) for t in sampler.get_timesteps(p, steps))
            if funcname(sampler) == "unipc":
                skip_type = str(getattr(shared.opts, "uni_pc_skip_type", "time_uniform"))
                levels = unipc_levels(scale, len(timesteps), skip_type)
            else:
                # DDIM and PLMS step from the largest timestep down to the second smallest
                levels = [scale.sigma(t) for t in reversed(timesteps[1:])]
        elif callable(getattr(sampler, "get_sigmas", None)):
            levels = [float(s) for s in sampler.get_sigmas(p, steps)[:-1]]
        else:
            raise TypeError(f"sampler {type(sampler).__name__} exposes no noise schedule")
    finally:
        p.is_hr_pass = was_hires
        p.extra_generation_params.clear()
        p.extra_generation_params.update(saved_params)
    return Reference(tuple(levels))


def first_pass_reference(p: Any, sampler: Any, model: Any, is_hires: bool) -> Reference:
    """``reference`` of the first pass, also from the hires pass (where the first pass did not run here, hires from
    an existing image, ``p.sampler`` is the hires sampler: the first pass's is made from ``p.sampler_name``)."""
    if is_hires:
        from modules import sd_samplers

        sampler = sd_samplers.create_sampler(p.sampler_name, model)
    return reference(p, sampler, model, int(p.steps))


def level_of(sigma: Any, scale: TimestepScale | None) -> float:
    """The evaluation's noise level as a sigma (``scale`` converts timestep samplers' timesteps)."""
    value = float(sigma.max()) if hasattr(sigma, "max") else float(sigma)
    return scale.sigma(value) if scale is not None else value
