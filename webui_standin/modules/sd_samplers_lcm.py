"""Stand-in for modules/sd_samplers_lcm.py (v1.10.1): the 'LCM' sampler (Latent Consistency Models).

Facts reproduced (written for this stand-in; no WebUI code was used): LCM works on 50 of the model's 1000 training
timesteps, 19, 39, ..., 999 (every 20th, ending at 999). Its denoiser wraps the usual eps model with that 50-level
sigma table: a sigma is snapped to the nearest table level and the UNet gets that level's timestep; the denoised
estimate is then blended with the input by the consistency-model boundary condition, c_skip = s_d^2 / (u^2 + s_d^2),
c_out = u / sqrt(u^2 + s_d^2), with s_d = 0.5 and u = 10 x timestep. Its default schedule runs n levels equally spaced
in timestep from 999 down to 19. The sampler evaluates once per step, calls back right after, then jumps to the next
level by re-noising the denoised estimate with fresh noise.
"""

from __future__ import annotations

import k_diffusion.external
import k_diffusion.sampling
import torch
from k_diffusion import utils
from modules import sd_samplers_cfg_denoiser, sd_samplers_common, sd_samplers_kdiffusion, shared

LCM_LEVELS = 50
LCM_STRIDE = 1000 // LCM_LEVELS  # 20
LCM_OFFSET = LCM_STRIDE - 1  # timesteps 19, 39, ..., 999
LCM_SIGMA_DATA = 0.5
LCM_TIMESTEP_SCALING = 10.0


class LCMCompVisDenoiser(k_diffusion.external.DiscreteEpsDDPMDenoiser):
    """mirrors sd_samplers_lcm.LCMCompVisDenoiser: a DiscreteEpsDDPMDenoiser over the 50 LCM timesteps."""

    def __init__(self, model) -> None:
        timesteps = torch.arange(LCM_LEVELS, device=model.alphas_cumprod.device) * LCM_STRIDE + LCM_OFFSET
        super().__init__(model, model.alphas_cumprod[timesteps].to(torch.float32), quantize=None)

    def get_sigmas(self, n=None) -> torch.Tensor:
        if n is None:
            return utils.append_zero(self.sigmas.flip(0))
        first, last = self.sigma_to_t(self.sigma_max), self.sigma_to_t(self.sigma_min)
        return utils.append_zero(self.t_to_sigma(torch.linspace(float(first), float(last), n)))

    def sigma_to_t(self, sigma, quantize=None) -> torch.Tensor:
        """The timestep of the nearest table level (always snapped)."""
        level = (sigma.log() - self.log_sigmas[:, None]).abs().argmin(dim=0).view(sigma.shape)
        return level * LCM_STRIDE + LCM_OFFSET

    def t_to_sigma(self, timestep) -> torch.Tensor:
        level = ((timestep - LCM_OFFSET) / LCM_STRIDE).float().clamp(0, len(self.sigmas) - 1)
        return super().t_to_sigma(level)

    def get_eps(self, *args, **kwargs):
        return self.inner_model.apply_model(*args, **kwargs)

    def forward(self, input, sigma, **kwargs):
        c_out, c_in = [utils.append_dims(v, input.ndim) for v in self.get_scalings(sigma)]
        timestep = self.sigma_to_t(sigma)
        eps = self.get_eps(input * c_in, timestep, **kwargs)
        denoised = input + eps * c_out
        u = utils.append_dims(timestep, input.ndim) * LCM_TIMESTEP_SCALING
        skip = LCM_SIGMA_DATA**2 / (u**2 + LCM_SIGMA_DATA**2)
        out = u / (u**2 + LCM_SIGMA_DATA**2) ** 0.5
        return out * denoised + skip * input


@torch.no_grad()
def sample_lcm(model, x, sigmas, extra_args=None, callback=None, disable=None, noise_sampler=None):
    """mirrors sd_samplers_lcm.sample_lcm: evaluate, call back, then x = denoised (+ sigma_next * fresh noise)."""
    extra_args = {} if extra_args is None else extra_args
    noise_sampler = k_diffusion.sampling.default_noise_sampler(x) if noise_sampler is None else noise_sampler
    batch_ones = x.new_ones([x.shape[0]])
    for i in range(len(sigmas) - 1):
        denoised = model(x, sigmas[i] * batch_ones, **extra_args)
        if callback is not None:
            callback({"x": x, "i": i, "sigma": sigmas[i], "sigma_hat": sigmas[i], "denoised": denoised})
        x = denoised
        if sigmas[i + 1] > 0:
            x = x + sigmas[i + 1] * noise_sampler(sigmas[i], sigmas[i + 1])
    return x


class CFGDenoiserLCM(sd_samplers_cfg_denoiser.CFGDenoiser):
    """mirrors sd_samplers_lcm.CFGDenoiserLCM: inner model = LCMCompVisDenoiser(shared.sd_model)."""

    @property
    def inner_model(self):
        self.model_wrap = self.model_wrap or LCMCompVisDenoiser(shared.sd_model)  # created on first use
        return self.model_wrap


class LCMSampler(sd_samplers_kdiffusion.KDiffusionSampler):
    """mirrors sd_samplers_lcm.LCMSampler: a KDiffusionSampler with the LCM denoiser."""

    def __init__(self, funcname, sd_model, options=None) -> None:
        super().__init__(funcname, sd_model, options)
        self.model_wrap_cfg = CFGDenoiserLCM(self)
        self.model_wrap = self.model_wrap_cfg.inner_model


samplers_lcm = [("LCM", sample_lcm, ["k_lcm"], {})]  # mirrors sd_samplers_lcm.samplers_lcm
samplers_data_lcm = [
    sd_samplers_common.SamplerData(label, lambda model, fn=funcname: LCMSampler(fn, model), aliases, options)
    for label, funcname, aliases, options in samplers_lcm
]
