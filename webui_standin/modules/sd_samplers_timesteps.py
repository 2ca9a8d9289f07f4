"""Stand-in for modules/sd_samplers_timesteps.py (v1.10.1): samplers on the model's discrete timesteps.

Facts modelled: DDIM, DDIM CFG++, PLMS and UniPC, in that order, with their aliases; the CFG denoiser gets the
model timestep as ``sigma`` (so params.sigma holds e.g. 951, 901, ...), blends the inpainting mask before the model
runs, and its preview x0 is (x - sqrt(1 - a_t) eps) / sqrt(a_t); v-prediction models are turned into eps
predictions (eps = sqrt(a_t) v + sqrt(1 - a_t) x); the timesteps of n steps are 1, 1 + 1000 // n, ... (at most 999;
one more step when the penultimate level is discarded); eta defaults to the "eta_ddim" option and is recorded as
"Eta DDIM" when not 0; img2img noises the init latent to the timestep t_enc (sqrt(a) x + sqrt(1 - a) noise) and runs
the timesteps below it.
"""

from __future__ import annotations

import modules.shared as shared
import torch
from modules import devices, sd_samplers_common, sd_samplers_timesteps_impl, standin_timesteps_extra
from modules.sd_samplers_cfg_denoiser import CFGDenoiser

samplers_timesteps = [  # the WebUI's samplers_timesteps: (label, function, aliases, options)
    (label, function, [alias], {})
    for label, function, alias in (
        ("DDIM", sd_samplers_timesteps_impl.ddim, "ddim"),
        ("DDIM CFG++", standin_timesteps_extra.ddim_cfgpp, "ddim_cfgpp"),
        ("PLMS", sd_samplers_timesteps_impl.plms, "plms"),
        ("UniPC", standin_timesteps_extra.unipc, "unipc"),
    )
]


def _constructor(function):
    return lambda model: CompVisSampler(function, model)


samplers_data_timesteps = [
    sd_samplers_common.SamplerData(label, _constructor(function), aliases, options)
    for label, function, aliases, options in samplers_timesteps
]


class CompVisTimestepsDenoiser(torch.nn.Module):
    """The eps model at integer timesteps: ``model.apply_model(x, t, cond=...)``."""

    def __init__(self, model, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.inner_model = model

    def forward(self, input, timesteps, **kwargs):
        return self.inner_model.apply_model(input, timesteps, **kwargs)


class CompVisTimestepsVDenoiser(CompVisTimestepsDenoiser):
    """A v-prediction model seen as an eps model (Salimans & Ho 2022): eps = sqrt(a_t) v + sqrt(1 - a_t) x."""

    def predict_eps_from_z_and_v(self, x_t, t, v):
        a_t = self.inner_model.alphas_cumprod[t.to(torch.int)].view(-1, 1, 1, 1)
        return a_t.sqrt() * v + (1 - a_t).sqrt() * x_t

    def forward(self, input, timesteps, **kwargs):
        v = super().forward(input, timesteps, **kwargs)
        return self.predict_eps_from_z_and_v(input, timesteps, v)


class CFGDenoiserTimesteps(CFGDenoiser):
    """The CFG denoiser of timestep samplers (mask blended before the model; x0 preview from eps)."""

    def __init__(self, sampler) -> None:
        super().__init__(sampler)
        self.alphas = shared.sd_model.alphas_cumprod
        self.mask_before_denoising = True

    def get_pred_x0(self, x_in, x_out, sigma):
        a_t = self.alphas[sigma.to(dtype=int)].view(-1, 1, 1, 1)
        return (x_in - (1 - a_t).sqrt() * x_out) / a_t.sqrt()

    @property
    def inner_model(self):
        if self.model_wrap is None:
            is_v = shared.sd_model.parameterization == "v"
            self.model_wrap = (CompVisTimestepsVDenoiser if is_v else CompVisTimestepsDenoiser)(shared.sd_model)
        return self.model_wrap


class CompVisSampler(sd_samplers_common.Sampler):
    """A sampler running one of the timestep functions (ddim, plms, ...) through CFGDenoiserTimesteps."""

    def __init__(self, funcname, sd_model) -> None:
        super().__init__(funcname)
        # eta: option name, infotext key, default when neither is set
        self.eta_option_field, self.eta_infotext_field, self.eta_default = "eta_ddim", "Eta DDIM", 0.0
        self.model_wrap_cfg = CFGDenoiserTimesteps(self)
        self.model_wrap = self.model_wrap_cfg.inner_model

    def get_timesteps(self, p, steps: int) -> torch.Tensor:
        """Ascending timesteps 1, 1 + 1000 // steps, ... clipped to [0, 999]."""
        if self.discards_penultimate_sigma(p):
            steps += 1
        stride = 1000 // steps
        return (torch.arange(0, 1000, stride, device=devices.device) + 1).clamp(0, 999)

    def _kwargs(self, p, offered: dict) -> dict:
        kwargs = self.initialize(p)
        kwargs.update({name: value for name, value in offered.items() if self._accepts(name)})
        return kwargs

    def sample_img2img(
        self, p, x, noise, conditioning, unconditional_conditioning, steps=None, image_conditioning=None
    ):
        """img2img: x noised to timesteps[t_enc], then the t_enc timesteps below it (t_enc + 1 steps counted)."""
        steps, t_enc = sd_samplers_common.setup_img2img_steps(p, steps)
        timesteps = self.get_timesteps(p, steps)
        a_t = shared.sd_model.alphas_cumprod[timesteps[t_enc]]
        keep, spread = torch.sqrt(a_t), torch.sqrt(1 - a_t)
        xi = sd_samplers_common.add_extra_noise(p, x, noise, x * keep + noise * spread, keep)
        kwargs = self._kwargs(p, {"timesteps": timesteps[:t_enc], "is_img2img": True})
        self.model_wrap_cfg.init_latent = x
        self.last_latent = x
        return self.run_sampler(p, xi, t_enc + 1, conditioning, unconditional_conditioning, image_conditioning, kwargs)

    def sample(self, p, x, conditioning, unconditional_conditioning, steps=None, image_conditioning=None):
        """txt2img: the sampler function on all timesteps of ``steps`` steps."""
        steps = steps or p.steps
        timesteps = self.get_timesteps(p, steps)
        kwargs = self._kwargs(p, {"timesteps": timesteps})
        self.last_latent = x
        return self.run_sampler(p, x, steps, conditioning, unconditional_conditioning, image_conditioning, kwargs)
