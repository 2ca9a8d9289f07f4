"""Stand-in for modules/sd_samplers_kdiffusion.py (v1.10.1): the samplers that run k-diffusion functions on sigmas.

Facts modelled: the registered names, aliases and options, in the WebUI's order; which sampler keyword arguments
the WebUI passes (picked by the function's signature); the noise schedule of a pass (the pass's schedule type,
"Automatic" meaning the sampler's own default, the sampler_noise_scheduler_override hook, the min/max sigma and rho
options with their infotext entries, an extra step whose penultimate sigma is dropped for samplers flagged
"discard_next_to_last_sigma"); txt2img starting from noise scaled by the first sigma (or sqrt(1 + sigma^2) with the
SGM option); img2img running the tail of a full schedule from the init latent plus noise at the tail's first sigma;
seeded Brownian noise for the SDE samplers.
"""

from __future__ import annotations

import k_diffusion.external
import k_diffusion.sampling
import modules.shared as shared
import torch
from modules import devices, sd_samplers_cfg_denoiser, sd_samplers_common, sd_samplers_extra, sd_schedulers
from modules.shared import opts


def _entry(label: str, function, aliases: list[str], **options):
    return label, function, aliases, options


_KARRAS = {"scheduler": "karras"}
_EXPONENTIAL_BROWNIAN = {"scheduler": "exponential", "brownian_noise": True}
_DISCARD = {"discard_next_to_last_sigma": True}

samplers_k_diffusion = [  # the WebUI's samplers_k_diffusion: (label, function name or function, aliases, options)
    _entry("DPM++ 2M", "sample_dpmpp_2m", ["k_dpmpp_2m"], **_KARRAS),
    _entry("DPM++ SDE", "sample_dpmpp_sde", ["k_dpmpp_sde"], **_KARRAS, second_order=True, brownian_noise=True),
    _entry("DPM++ 2M SDE", "sample_dpmpp_2m_sde", ["k_dpmpp_2m_sde"], **_EXPONENTIAL_BROWNIAN),
    _entry(
        "DPM++ 2M SDE Heun", "sample_dpmpp_2m_sde", ["k_dpmpp_2m_sde_heun"], **_EXPONENTIAL_BROWNIAN, solver_type="heun"
    ),
    _entry("DPM++ 2S a", "sample_dpmpp_2s_ancestral", ["k_dpmpp_2s_a"], **_KARRAS, uses_ensd=True, second_order=True),
    _entry(
        "DPM++ 3M SDE",
        "sample_dpmpp_3m_sde",
        ["k_dpmpp_3m_sde"],
        scheduler="exponential",
        **_DISCARD,
        brownian_noise=True,
    ),
    _entry("Euler a", "sample_euler_ancestral", ["k_euler_a", "k_euler_ancestral"], uses_ensd=True),
    _entry("Euler", "sample_euler", ["k_euler"]),
    _entry("LMS", "sample_lms", ["k_lms"]),
    _entry("Heun", "sample_heun", ["k_heun"], second_order=True),
    _entry("DPM2", "sample_dpm_2", ["k_dpm_2"], **_KARRAS, **_DISCARD, second_order=True),
    _entry("DPM2 a", "sample_dpm_2_ancestral", ["k_dpm_2_a"], **_KARRAS, **_DISCARD, uses_ensd=True, second_order=True),
    _entry("DPM fast", "sample_dpm_fast", ["k_dpm_fast"], uses_ensd=True),
    _entry("DPM adaptive", "sample_dpm_adaptive", ["k_dpm_ad"], uses_ensd=True),
    _entry("Restart", sd_samplers_extra.restart_sampler, ["restart"], **_KARRAS, second_order=True),
]


def _constructor(function):
    return lambda model: KDiffusionSampler(function, model)


samplers_data_k_diffusion = [
    sd_samplers_common.SamplerData(label, _constructor(function), aliases, options)
    for label, function, aliases, options in samplers_k_diffusion
    if callable(function) or hasattr(k_diffusion.sampling, function)
]

_CHURN = ["s_churn", "s_tmin", "s_tmax", "s_noise"]
sampler_extra_params = {  # the WebUI's sampler_extra_params: keyword arguments taken from p / the options
    **dict.fromkeys(("sample_euler", "sample_heun", "sample_dpm_2"), _CHURN),
    **dict.fromkeys(("sample_dpm_fast", "sample_dpmpp_2m_sde", "sample_dpmpp_3m_sde"), ["s_noise"]),
}

k_diffusion_samplers_map = {x.name: x for x in samplers_data_k_diffusion}
k_diffusion_scheduler = {x.name: x.function for x in sd_schedulers.schedulers}

# options that override a schedule's arguments, with their infotext labels
_SIGMA_RANGE_OPTIONS = (("sigma_min", "Schedule min sigma", 0), ("sigma_max", "Schedule max sigma", -1))


class CFGDenoiserKDiffusion(sd_samplers_cfg_denoiser.CFGDenoiser):
    """The CFG denoiser of k-diffusion samplers: its inner model is what the checkpoint's ``create_denoiser`` makes
    when it has one (v1.10.1's SD3 path), else a CompVisDenoiser (CompVisVDenoiser for v-prediction models) around
    shared.sd_model, made on first use."""

    @property
    def inner_model(self):
        if self.model_wrap is None and callable(getattr(shared.sd_model, "create_denoiser", None)):
            self.model_wrap = shared.sd_model.create_denoiser()
        if self.model_wrap is None:
            is_v = shared.sd_model.parameterization == "v"
            wrapper = k_diffusion.external.CompVisVDenoiser if is_v else k_diffusion.external.CompVisDenoiser
            self.model_wrap = wrapper(shared.sd_model, quantize=shared.opts.enable_quantization)
        return self.model_wrap


class KDiffusionSampler(sd_samplers_common.Sampler):
    """A sampler running a k-diffusion sampling function (by name, or a function such as the Restart sampler)."""

    def __init__(self, funcname, sd_model, options=None) -> None:
        super().__init__(funcname)
        self.extra_params = sampler_extra_params.get(funcname, [])
        self.options = options or {}
        self.func = funcname if callable(funcname) else getattr(k_diffusion.sampling, funcname)
        self.model_wrap_cfg = CFGDenoiserKDiffusion(self)
        self.model_wrap = self.model_wrap_cfg.inner_model

    def _schedule_arguments(self, p, scheduler, model_range) -> dict:
        """Keyword arguments of a scheduler function and the infotext entries of the schedule."""
        use_old = opts.use_old_karras_scheduler_sigmas
        arguments = dict(zip(("sigma_min", "sigma_max"), (0.1, 10) if use_old else model_range, strict=True))
        recorded = p.extra_generation_params
        if not p.is_hr_pass and scheduler.label != "Automatic":
            recorded["Schedule type"] = scheduler.label
        elif recorded.get("Schedule type") != scheduler.label:
            recorded["Hires schedule type"] = scheduler.label
        for name, label, index in _SIGMA_RANGE_OPTIONS:
            value = getattr(opts, name)
            if value != 0 and value != model_range[index]:
                arguments[name] = recorded[label] = value
        if scheduler.default_rho != -1 and opts.rho not in (0, scheduler.default_rho):
            arguments["rho"] = recorded["Schedule rho"] = opts.rho
        if scheduler.need_inner_model:
            arguments["inner_model"] = self.model_wrap
        return arguments

    def get_sigmas(self, p, steps: int) -> torch.Tensor:
        """The pass's noise levels (steps + 1 values ending in 0): the hires scheduler in the hires pass, else
        p.scheduler; "Automatic" is the sampler's default scheduler, and without a scheduler function the model's
        own discrete schedule. With the penultimate sigma discarded, one more step is made and that level dropped."""
        discard = self.discards_penultimate_sigma(p)
        count = steps + 1 if discard else steps
        name = (p.hr_scheduler if p.is_hr_pass else p.scheduler) or "Automatic"
        if name == "Automatic":
            name = self.config.options.get("scheduler", None)
        scheduler = sd_schedulers.schedulers_map.get(name)
        if p.sampler_noise_scheduler_override:
            sigmas = p.sampler_noise_scheduler_override(count)
        elif scheduler is None or scheduler.function is None:
            sigmas = self.model_wrap.get_sigmas(count)
        else:
            model_range = (self.model_wrap.sigmas[0].item(), self.model_wrap.sigmas[-1].item())
            arguments = self._schedule_arguments(p, scheduler, model_range)
            sigmas = scheduler.function(n=count, **arguments, device=devices.cpu)
        if discard:
            sigmas = torch.cat([sigmas[:-2], sigmas[-1:]])
        return sigmas.cpu()

    def _function_kwargs(self, p, x, full_sigmas, offered: dict) -> dict:
        """Sampler keyword arguments: those of ``offered`` the function accepts, Brownian noise and Heun's solver
        type where the sampler's options ask for them."""
        kwargs = self.initialize(p)
        kwargs.update({name: value for name, value in offered.items() if self._accepts(name)})
        if self.config.options.get("brownian_noise", False):
            kwargs["noise_sampler"] = self.create_noise_sampler(x, full_sigmas, p)
        if self.config.options.get("solver_type", None) == "heun":
            kwargs["solver_type"] = "heun"
        return kwargs

    def sample_img2img(
        self, p, x, noise, conditioning, unconditional_conditioning, steps=None, image_conditioning=None
    ):
        """img2img: the last t_enc + 1 steps of the full schedule (from index steps - t_enc - 1), starting from the
        init latent plus noise at that tail's first sigma (or the model's own add_noise_to_latent)."""
        steps, t_enc = sd_samplers_common.setup_img2img_steps(p, steps)
        sigmas = self.get_sigmas(p, steps)
        tail = sigmas[steps - t_enc - 1 :]
        noiser = getattr(shared.sd_model, "add_noise_to_latent", None)
        xi = noiser(x, noise, tail[0]) if noiser is not None else x + noise * tail[0]
        xi = sd_samplers_common.add_extra_noise(p, x, noise, xi, 1)
        offered = {"sigma_min": tail[-2], "sigma_max": tail[0], "n": len(tail) - 1, "sigma_sched": tail, "sigmas": tail}
        kwargs = self._function_kwargs(p, x, sigmas, offered)
        self.model_wrap_cfg.init_latent = x
        self.last_latent = x
        return self.run_sampler(p, xi, t_enc + 1, conditioning, unconditional_conditioning, image_conditioning, kwargs)

    def sample(self, p, x, conditioning, unconditional_conditioning, steps=None, image_conditioning=None):
        """txt2img: unit noise scaled to the first level (to sqrt(1 + sigma^2) with the SGM option), then the whole
        schedule."""
        steps = steps or p.steps
        sigmas = self.get_sigmas(p, steps)
        sgm = bool(opts.sgm_noise_multiplier)
        if sgm:
            p.extra_generation_params["SGM noise multiplier"] = True
        x = x * (torch.sqrt(1.0 + sigmas[0] ** 2.0) if sgm else sigmas[0])
        offered = {"n": steps, "sigmas": sigmas}
        if self._accepts("sigma_min"):
            offered.update(sigma_min=self.model_wrap.sigmas[0].item(), sigma_max=self.model_wrap.sigmas[-1].item())
        kwargs = self._function_kwargs(p, x, sigmas, offered)
        self.last_latent = x
        return self.run_sampler(p, x, steps, conditioning, unconditional_conditioning, image_conditioning, kwargs)
