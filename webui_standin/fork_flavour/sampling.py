"""The forks' CFG denoiser: the body that replaces the A1111 ``CFGDenoiser.forward`` under a fork flavour.

Facts modelled (docs/forks.md §2-§4), per evaluation, in this order:

1. an interrupted or skipped job raises; the refiner may switch in (new conds; the loaded model gets new forge
   objects, so a patched unet clone is lost);
2. a timestep sampler's (DDIM, PLMS, UniPC, DDIM CFG++) timestep t becomes the real sigma = sqrt((1 - a_t) / a_t)
   and x is scaled by sqrt(sigma^2 + 1) (``classic_ddim_eps_estimation``);
3. the prompt schedules are read at ``self.step`` (an uncond of None stays None);
4. ``cfg_denoiser_callback`` gets x, image_cond and sigma with ONE row per image, the multicond rows as text_cond
   and the B uncond rows as text_uncond; x, sigma, image_cond, text_cond and text_uncond are read back (reForge
   keeps its own x and sigma);
5. the CFG scale of the pass (hires: ``p.hr_cfg``, Classic ``p.hr_cfg_scale``), then the host's skip-early / NGMS
   rule (see hosts.py);
6. cond and uncond are compiled into condition lists (conditions.py); an image conditioning of the latent's size
   is added as ``c_concat``;
7. the unet's ``conditioning_modifiers`` run, each ``fn(model, x, sigma, uncond, cond, cond_scale, model_options,
   seed) -> the same tuple``;
8. guidance (``guide``): the uncond is not evaluated when cond_scale is close to 1 and ``disable_cfg1_optimization``
   is not set (its prediction is zeros); ``calc_cond_uncond_batch`` gives the x0 predictions; the combine
   u + (c - u) * scale * k with k = the sum of the AND strengths when that is not close to 1; then every
   ``sampler_post_cfg_function(args)`` in order, with the host's args keys;
9. with a mask the result is blended with the init latent (scripts' on_mask_blend); it is the preview;
10. ``cfg_after_cfg_callback`` (no ``cfg_denoised_callback`` in any fork); ``self.step += 1``; a timestep sampler
    gets eps = (x - denoised) / sigma back.

How each family hands a skipped uncond on (all deliver ``text_uncond`` to the callback first):
Forge/Neo set cond_scale = 1 before the modifiers, so the cfg1 optimisation decides (and honours the unet's
``disable_cfg1_optimization``); Classic decides "no uncond" from cond_scale close to 1 *before* the modifiers and
passes None whatever the unet asks for; reForge passes None with cond_scale 1 after the modifiers, which saw the
unskipped scale.

``denoiser.last_noise_uncond`` (DDIM CFG++) is (x - uncond x0) / sigma as in Forge; ``cond_scale_miltiplier`` has
no effect (no fork's forward reads it). Not modelled: the noised-init blend before the model (inpainting),
ControlNet, pre-CFG and ``sampler_cfg_function`` hooks, edit (InstructPix2Pix) models, reForge dynamic Clip skip,
the padding options, the samplers the forks add and their own model options (CFG++ samplers of Classic/reForge).
"""

from __future__ import annotations

import math
from typing import Any

import torch
from fork_flavour import conditions, patcher
from modules import prompt_parser, sd_samplers_common
from modules.script_callbacks import AfterCFGCallbackParams, CFGDenoiserParams, cfg_after_cfg_callback
from modules.script_callbacks import cfg_denoiser_callback as run_cfg_denoiser_callbacks
from modules.shared import state


def _model_inputs(entry: dict, rows: int) -> dict:
    return {key: condition.process_cond(batch_size=rows) for key, condition in entry["model_conds"].items()}


def _batchable(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(a[key].can_concat(b[key]) for key in a)


def calc_cond_batch(model: Any, conds: list, x: torch.Tensor, sigma: torch.Tensor, model_options: dict) -> list:
    """x0 predictions, one tensor per condition list in ``conds`` (a list given as None gives zeros).

    Every entry is evaluated on all rows of ``x``; entries that can be batched with the first pending one are
    evaluated in one ``model.apply_model`` call, latest first (so a cond/uncond pair runs as [uncond, cond]); an
    entry's output counts with its ``strength`` and each list's outputs are averaged by those weights."""
    totals = [torch.zeros_like(x) for _ in conds]
    weights = [torch.full_like(x, 1e-37) for _ in conds]
    pending = [
        (which, entry.get("strength", 1.0), _model_inputs(entry, x.shape[0]))
        for which, listed in enumerate(conds)
        if listed is not None
        for entry in listed
    ]
    while pending:
        group = [item for item in pending if _batchable(pending[0][2], item[2])][::-1]
        pending = [item for item in pending if all(item is not chosen for chosen in group)]
        first_inputs = group[0][2]
        inputs = {key: first_inputs[key].concat([item[2][key] for item in group[1:]]) for key in first_inputs}
        options = dict(model_options.get("transformer_options", {}))
        options["cond_or_uncond"] = [which for which, _, _ in group]
        outputs = model.apply_model(
            torch.cat([x] * len(group)), torch.cat([sigma] * len(group)), transformer_options=options, **inputs
        ).chunk(len(group))
        for (which, strength, _), output in zip(group, outputs, strict=True):
            totals[which] += output * strength
            weights[which] += strength
    return [total / weight for total, weight in zip(totals, weights, strict=True)]


def calc_cond_uncond_batch(
    model: Any, cond: list, uncond: list | None, x: torch.Tensor, sigma: torch.Tensor, model_options: dict
) -> tuple:
    """(cond x0, uncond x0); the uncond prediction is zeros when ``uncond`` is None."""
    return tuple(calc_cond_batch(model, [cond, uncond], x, sigma, model_options))


def guide(host: Any, model: Any, x, sigma, uncond, cond, cond_scale: float, model_options: dict):
    """Step 8 of the module docstring: (denoised, cond x0, uncond x0)."""
    evaluated = uncond
    if math.isclose(cond_scale, 1.0) and not model_options.get("disable_cfg1_optimization", False):
        evaluated = None
    cond_pred, uncond_pred = calc_cond_uncond_batch(model, cond, evaluated, x, sigma, model_options)
    strength = sum(entry.get("strength", 1) for entry in cond)
    scale = cond_scale if math.isclose(strength, 1.0) else cond_scale * strength
    denoised = uncond_pred + (cond_pred - uncond_pred) * scale
    for function in model_options.get("sampler_post_cfg_function", []):
        args = {
            "denoised": denoised,
            "cond": cond,
            "uncond": evaluated if host.post_cfg_uncond_is_evaluated else uncond,
            "model": model,
            "uncond_denoised": uncond_pred,
            "cond_denoised": cond_pred,
            "sigma": sigma,
            "model_options": model_options,
            "input": x,
        }
        if host.post_cfg_has_cond_scale:
            args["cond_scale"] = cond_scale
        denoised = function(args)
    return denoised, cond_pred, uncond_pred


def _real_sigma(denoiser, x, sigma):
    """Step 1: (x scaled to the sigma parameterisation, real sigma) of a timestep sampler's (x, t)."""
    alphas = denoiser.inner_model.inner_model.alphas_cumprod
    levels = ((1 - alphas) / alphas) ** 0.5
    real = levels[sigma.round().long().clamp(0, levels.shape[0] - 1)].to(x.dtype)
    return x * ((real**2 + 1) ** 0.5)[:, None, None, None], real


def _compile(host, text_cond, conds_list, text_uncond):
    if host.family == 2:
        return conditions.compile_weighted_conditions(text_cond, conds_list), conditions.compile_conditions(text_uncond)
    return conditions.forge1_weighted_conditions(text_cond, conds_list), conditions.forge1_conditions(text_uncond)


def _add_image_conditioning(unet, image_cond, x, cond, uncond) -> None:
    """Step 6: ``c_concat`` for an image conditioning with the latent's batch and size (inpainting)."""
    image = unet.extra_concat_condition if unet.extra_concat_condition is not None else image_cond
    if not isinstance(image, torch.Tensor) or image.shape[0] != x.shape[0] or image.shape[2:] != x.shape[2:]:
        return
    for entry in [*cond, *(uncond or [])]:
        entry["model_conds"]["c_concat"] = conditions.Condition(image)


def fork_forward(host: Any, denoiser, x, sigma, uncond, cond, cond_scale, s_min_uncond, image_cond):
    """One guided evaluation as the fork ``host`` makes it (see the module docstring)."""
    if state.interrupted or state.skipped:
        raise sd_samplers_common.InterruptedException
    if sd_samplers_common.apply_refiner(denoiser, sigma):  # timed like A1111's (on the sampler's own levels)
        cond = denoiser.sampler.sampler_extra_args["cond"]
        uncond = denoiser.sampler.sampler_extra_args["uncond"]
        patcher.reload(denoiser.inner_model.inner_model)
    timestep_sampler = denoiser.classic_ddim_eps_estimation
    if timestep_sampler:
        x, sigma = _real_sigma(denoiser, x, sigma)

    conds_list, text = prompt_parser.reconstruct_multicond_batch(cond, denoiser.step)
    uncond = None if uncond is None else prompt_parser.reconstruct_cond_batch(uncond, denoiser.step)
    params = CFGDenoiserParams(x, image_cond, sigma, state.sampling_step, state.sampling_steps, text, uncond, denoiser)
    run_cfg_denoiser_callbacks(params)
    x_in, sigma_in = (params.x, params.sigma) if host.reads_x_sigma_back else (x, sigma)

    p = denoiser.p
    if p.is_hr_pass:
        cond_scale = host.hires_cfg(p)
    skip = host.skips_uncond(denoiser, sigma, s_min_uncond)
    if skip and host.style != "reforge":
        cond_scale = 1.0
    drop = skip if host.style == "reforge" else host.style == "classic" and math.isclose(cond_scale, 1.0)

    unet = denoiser.inner_model.inner_model.forge_objects.unet
    model, model_options, seed = unet.model, unet.model_options, p.seeds[0]
    cond_in, uncond_in = _compile(host, params.text_cond, conds_list, params.text_uncond)
    _add_image_conditioning(unet, params.image_cond, x_in, cond_in, uncond_in)
    for modifier in model_options.get("conditioning_modifiers", []):
        model, x_in, sigma_in, uncond_in, cond_in, cond_scale, model_options, seed = modifier(
            model, x_in, sigma_in, uncond_in, cond_in, cond_scale, model_options, seed
        )
    if drop:
        uncond_in = None
        cond_scale = 1.0 if host.style == "reforge" else cond_scale
    denoised, _, uncond_pred = guide(host, model, x_in, sigma_in, uncond_in, cond_in, cond_scale, model_options)

    if denoiser.need_last_noise_uncond:
        denoiser.last_noise_uncond = (x - uncond_pred) / sigma[:, None, None, None]
    if denoiser.mask is not None:
        denoised = denoiser._blend(denoised, sigma)  # the same mask blend as A1111's denoiser
    denoiser.sampler.last_latent = denoised
    sd_samplers_common.store_latent(denoised)

    after = AfterCFGCallbackParams(denoised, state.sampling_step, state.sampling_steps)
    cfg_after_cfg_callback(after)
    denoiser.step += 1
    if timestep_sampler:
        return (x - after.x) / sigma[:, None, None, None]
    return after.x
