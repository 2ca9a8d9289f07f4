"""Stand-in for modules/sd_samplers_common.py (v1.10.1)."""

from __future__ import annotations

import inspect
from collections import namedtuple
from typing import Any

import k_diffusion.sampling
import torch
from modules import devices, shared
from modules.shared import opts, state

SamplerDataTuple = namedtuple("SamplerData", ["name", "constructor", "aliases", "options"])


class SamplerData(SamplerDataTuple):
    """mirrors sd_samplers_common.SamplerData: total_steps doubles the step count for 'second_order' samplers."""

    def total_steps(self, steps: int) -> int:
        if self.options.get("second_order", False):
            steps = steps * 2
        return steps


def setup_img2img_steps(p, steps: int | None = None) -> tuple[int, int]:
    """mirrors sd_samplers_common.setup_img2img_steps: (schedule length, t_enc)."""
    if opts.img2img_fix_steps or steps is not None:
        requested_steps = steps or p.steps
        steps = int(requested_steps / min(p.denoising_strength, 0.999)) if p.denoising_strength > 0 else 0
        t_enc = requested_steps - 1
    else:
        steps = p.steps
        t_enc = int(min(p.denoising_strength, 0.999) * steps)
    return steps, t_enc


approximation_indexes = {"Full": 0, "Approx NN": 1, "Approx cheap": 2, "TAESD": 3}


def samples_to_images_tensor(sample: torch.Tensor, approximation: int | None = None, model=None) -> torch.Tensor:
    """mirrors sd_samplers_common.samples_to_images_tensor (only the 'Full' VAE decode exists here): [-1, 1] images."""
    if model is None:
        model = shared.sd_model
    with devices.without_autocast():
        return model.decode_first_stage(sample)


def decode_first_stage(model, x: torch.Tensor) -> torch.Tensor:  # mirrors sd_samplers_common.decode_first_stage
    return samples_to_images_tensor(x, 0, model)


def images_tensor_to_samples(image: torch.Tensor, approximation: int | None = None, model=None) -> torch.Tensor:
    """mirrors sd_samplers_common.images_tensor_to_samples: image in [0, 1] -> latent."""
    if model is None:
        model = shared.sd_model
    image = image.to(shared.device, dtype=devices.dtype_vae)
    image = image * 2 - 1
    if len(image) > 1:
        return torch.stack(
            [model.get_first_stage_encoding(model.encode_first_stage(torch.unsqueeze(img, 0)))[0] for img in image]
        )
    return model.get_first_stage_encoding(model.encode_first_stage(image))


def store_latent(decoded: torch.Tensor) -> None:  # mirrors sd_samplers_common.store_latent (no live previews)
    state.current_latent = decoded


def is_sampler_using_eta_noise_seed_delta(p) -> bool:  # mirrors the sd_samplers_common function
    from modules import sd_samplers

    sampler_config = sd_samplers.find_sampler_config(p.sampler_name)
    eta = p.eta
    if eta is None and p.sampler is not None:
        eta = p.sampler.eta
    if eta is None and sampler_config is not None:
        eta = 0 if sampler_config.options.get("default_eta_is_0", False) else 1.0
    if eta == 0:
        return False
    return sampler_config.options.get("uses_ensd", False)


class InterruptedException(BaseException):
    """mirrors sd_samplers_common.InterruptedException (a BaseException: not caught by 'except Exception')."""


def apply_refiner(cfg_denoiser, sigma=None) -> bool:
    """Switch to the refiner checkpoint once the pass has progressed far enough; True when it switched now.

    Facts modelled (v1.10.1): progress is the evaluation count over the total steps when "switch by sampling
    steps" is set (or no level is known), else 1 - (nearest discrete timestep of the level) / 1000; nothing
    happens before "Refiner switch at", without a refiner, or when it is loaded already; with hires fix the
    "hires_fix_refiner_pass" option limits it to one pass. The switch loads the refiner's weights (into the
    same object for the same architecture), records Refiner / Refiner switch at in the infotext, recomputes the
    pass's conditioning with the refiner and hands it to the sampler.
    """
    p = cfg_denoiser.p
    if opts.refiner_switch_by_sample_steps or sigma is None:
        progress = cfg_denoiser.step / cfg_denoiser.total_steps
        p.extra_generation_params["Refiner switch by sampling steps"] = True
    else:
        level = torch.max(sigma)
        table = getattr(cfg_denoiser.inner_model, "sigmas", None)
        nearest = level.to(dtype=int) if table is None else torch.argmin(torch.abs(table.to(level.device) - level))
        progress = (999 - nearest) / 1000
    switch_at = getattr(p, "refiner_switch_at", None)
    refiner = getattr(p, "refiner_checkpoint_info", None)
    if (switch_at is not None and progress < switch_at) or refiner is None:
        return False
    if shared.sd_model.sd_checkpoint_info == refiner:
        return False
    if getattr(p, "enable_hr", False):
        which = opts.hires_fix_refiner_pass
        if which != ("second pass" if p.is_hr_pass else "first pass") and which != "both passes":
            return False
        if which != "second pass":
            p.extra_generation_params["Hires refiner"] = which
    p.extra_generation_params["Refiner"] = refiner.short_title
    p.extra_generation_params["Refiner switch at"] = switch_at
    from modules import sd_models

    sd_models.reload_model_weights(info=refiner)
    p.setup_conds()
    cfg_denoiser.update_inner_model()
    return True


class TorchHijack:
    """mirrors sd_samplers_common.TorchHijack: replaces k_diffusion.sampling.torch so randn_like uses p.rng."""

    def __init__(self, p) -> None:
        self.rng = p.rng

    def __getattr__(self, item: str) -> Any:
        if item == "randn_like":
            return self.randn_like
        if hasattr(torch, item):
            return getattr(torch, item)
        raise AttributeError(f"'{type(self).__name__}' object has no attribute '{item}'")

    def randn_like(self, x: torch.Tensor) -> torch.Tensor:
        return self.rng.next()


class Sampler:
    """mirrors sd_samplers_common.Sampler: shared state handling of the KDiffusion and timestep samplers."""

    def __init__(self, funcname) -> None:
        self.funcname = funcname
        self.func = funcname
        self.extra_params: list[str] = []
        self.sampler_noises = None
        self.stop_at = None
        self.eta = None
        self.config: SamplerData | None = None  # set by the function calling the constructor
        self.last_latent = None
        self.s_min_uncond = None
        self.s_churn = 0.0
        self.s_tmin = 0.0
        self.s_tmax = float("inf")
        self.s_noise = 1.0
        self.eta_option_field = "eta_ancestral"
        self.eta_infotext_field = "Eta"
        self.eta_default = 1.0
        self.conditioning_key = shared.sd_model.model.conditioning_key
        self.p = None
        self.model_wrap_cfg: Any = None
        self.sampler_extra_args: dict | None = None
        self.options: dict = {}

    def callback_state(self, d: dict) -> None:
        """mirrors Sampler.callback_state: k-diffusion's per-step callback sets state.sampling_step = d['i']."""
        step = d["i"]
        if self.stop_at is not None and step > self.stop_at:
            raise InterruptedException
        state.sampling_step = step
        shared.total_tqdm.update()

    def launch_sampling(self, steps: int, func):
        """mirrors Sampler.launch_sampling: sets the denoiser's steps/total_steps and state; an interrupt returns the
        last latent instead of raising."""
        self.model_wrap_cfg.steps = steps
        self.model_wrap_cfg.total_steps = self.config.total_steps(steps)
        state.sampling_steps = steps
        state.sampling_step = 0
        try:
            return func()
        except RecursionError:
            print("Encountered RecursionError during sampling, returning last latent.")
            return self.last_latent
        except InterruptedException:
            return self.last_latent

    def number_of_needed_noises(self, p) -> int:
        return p.steps

    def initialize(self, p) -> dict:
        """mirrors Sampler.initialize: binds p to the CFG denoiser, resets its step counter, hijacks k-diffusion's
        torch and collects extra sampler kwargs (eta, churn...)."""
        self.p = p
        self.model_wrap_cfg.p = p
        self.model_wrap_cfg.mask = p.mask if hasattr(p, "mask") else None
        self.model_wrap_cfg.nmask = p.nmask if hasattr(p, "nmask") else None
        self.model_wrap_cfg.step = 0
        self.model_wrap_cfg.image_cfg_scale = getattr(p, "image_cfg_scale", None)
        self.eta = p.eta if p.eta is not None else getattr(opts, self.eta_option_field, 0.0)
        self.s_min_uncond = getattr(p, "s_min_uncond", 0.0)

        k_diffusion.sampling.torch = TorchHijack(p)

        extra_params_kwargs = {}
        for param_name in self.extra_params:
            if hasattr(p, param_name) and param_name in inspect.signature(self.func).parameters:
                extra_params_kwargs[param_name] = getattr(p, param_name)

        if "eta" in inspect.signature(self.func).parameters:
            if self.eta != self.eta_default:
                p.extra_generation_params[self.eta_infotext_field] = self.eta
            extra_params_kwargs["eta"] = self.eta

        if len(self.extra_params) > 0:
            s_churn = getattr(opts, "s_churn", p.s_churn)
            s_tmin = getattr(opts, "s_tmin", p.s_tmin)
            s_tmax = getattr(opts, "s_tmax", p.s_tmax) or self.s_tmax  # 0 = inf
            s_noise = getattr(opts, "s_noise", p.s_noise)
            if "s_churn" in extra_params_kwargs and s_churn != self.s_churn:
                extra_params_kwargs["s_churn"] = s_churn
                p.s_churn = s_churn
                p.extra_generation_params["Sigma churn"] = s_churn
            if "s_tmin" in extra_params_kwargs and s_tmin != self.s_tmin:
                extra_params_kwargs["s_tmin"] = s_tmin
                p.s_tmin = s_tmin
                p.extra_generation_params["Sigma tmin"] = s_tmin
            if "s_tmax" in extra_params_kwargs and s_tmax != self.s_tmax:
                extra_params_kwargs["s_tmax"] = s_tmax
                p.s_tmax = s_tmax
                p.extra_generation_params["Sigma tmax"] = s_tmax
            if "s_noise" in extra_params_kwargs and s_noise != self.s_noise:
                extra_params_kwargs["s_noise"] = s_noise
                p.s_noise = s_noise
                p.extra_generation_params["Sigma noise"] = s_noise

        return extra_params_kwargs

    def create_noise_sampler(self, x, sigmas, p):
        """mirrors Sampler.create_noise_sampler: a seeded Brownian noise sampler for DPM++ SDE."""
        if shared.opts.no_dpmpp_sde_batch_determinism:
            return None
        from k_diffusion.sampling import BrownianTreeNoiseSampler

        sigma_min, sigma_max = sigmas[sigmas > 0].min(), sigmas.max()
        current_iter_seeds = p.all_seeds[p.iteration * p.batch_size : (p.iteration + 1) * p.batch_size]
        return BrownianTreeNoiseSampler(x, sigma_min, sigma_max, seed=current_iter_seeds)

    def sample(self, p, x, conditioning, unconditional_conditioning, steps=None, image_conditioning=None):
        raise NotImplementedError()

    def sample_img2img(
        self, p, x, noise, conditioning, unconditional_conditioning, steps=None, image_conditioning=None
    ):
        raise NotImplementedError()

    def add_infotext(self, p) -> None:  # mirrors Sampler.add_infotext
        if self.model_wrap_cfg.padded_cond_uncond:
            p.extra_generation_params["Pad conds"] = True
        if self.model_wrap_cfg.padded_cond_uncond_v0:
            p.extra_generation_params["Pad conds v0"] = True
