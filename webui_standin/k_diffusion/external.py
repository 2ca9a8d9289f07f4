"""Stand-in for k_diffusion/external.py: a discrete DDPM model seen as a denoiser D(x, sigma) of a VE process.

Facts modelled (k-diffusion as vendored by WebUI v1.10.1): a model trained on the discrete schedule
alpha_bar_0..999 has the noise levels sigma_t = sqrt((1 - alpha_bar_t) / alpha_bar_t), kept ascending in ``sigmas``
(``sigma_min`` = sigmas[0], ``sigma_max`` = sigmas[-1]). A continuous sigma is mapped to a fractional timestep by
linear interpolation in log sigma (clamped to the table's ends, or snapped to the nearest level when quantising),
a fractional timestep back to sigma likewise. The input is scaled by 1 / sqrt(sigma^2 + 1) before the model sees it;
an eps model's output gives D = x - sigma eps, a v model's D = x / (sigma^2 + 1) - sigma v / sqrt(sigma^2 + 1).
The CompVis wrappers call ``inner_model.apply_model(x, t, cond=...)``.
"""

from __future__ import annotations

import torch
from k_diffusion import utils
from torch import nn


def _levels_of(alphas_cumprod: torch.Tensor) -> torch.Tensor:
    return ((1 - alphas_cumprod) / alphas_cumprod) ** 0.5


class DiscreteSchedule(nn.Module):
    """Models k-diffusion's DiscreteSchedule: the ascending table of training sigmas and the sigma <-> t maps."""

    def __init__(self, sigmas: torch.Tensor, quantize: bool) -> None:
        super().__init__()
        self.register_buffer("sigmas", sigmas)
        self.register_buffer("log_sigmas", sigmas.log())
        self.quantize = quantize

    @property
    def sigma_min(self) -> torch.Tensor:
        return self.sigmas[0]

    @property
    def sigma_max(self) -> torch.Tensor:
        return self.sigmas[-1]

    def get_sigmas(self, n: int | None = None) -> torch.Tensor:
        """The whole table descending (n None), else the levels at n timesteps evenly spaced from the last to 0;
        a final 0 is appended either way."""
        if n is None:
            descending = self.sigmas.flip(0)
        else:
            last = len(self.sigmas) - 1
            descending = self.t_to_sigma(torch.linspace(last, 0, n, device=self.sigmas.device))
        return utils.append_zero(descending)

    def sigma_to_t(self, sigma: torch.Tensor, quantize: bool | None = None) -> torch.Tensor:
        """Fractional timestep of ``sigma``: linear in log sigma between the two table levels around it (the end
        pair outside the table, the fraction clamped to [0, 1]); the nearest level's index when quantising."""
        snap = self.quantize if quantize is None else quantize
        table = self.log_sigmas
        wanted = sigma.log().reshape(-1)
        if snap:
            return (wanted[None, :] - table[:, None]).abs().argmin(dim=0).view(sigma.shape)
        below = torch.searchsorted(table, wanted.to(table.dtype).contiguous(), right=True) - 1
        below = below.clamp(0, table.shape[0] - 2)
        lo, hi = table[below], table[below + 1]
        frac = ((lo - wanted) / (lo - hi)).clamp(0, 1)
        return ((1 - frac) * below + frac * (below + 1)).view(sigma.shape)

    def t_to_sigma(self, t: torch.Tensor) -> torch.Tensor:
        """sigma at a fractional timestep: log sigma interpolated linearly between the neighbouring integers."""
        t = t.float()
        floor, ceil = t.floor().long(), t.ceil().long()
        frac = t.frac()
        table = self.log_sigmas
        return ((1 - frac) * table[floor] + frac * table[ceil]).exp()


class DiscreteEpsDDPMDenoiser(DiscreteSchedule):
    """Models k-diffusion's DiscreteEpsDDPMDenoiser: D(x, sigma) = x - sigma * eps(x / sqrt(sigma^2 + 1), t(sigma))."""

    def __init__(self, model, alphas_cumprod: torch.Tensor, quantize: bool) -> None:
        super().__init__(_levels_of(alphas_cumprod), quantize)
        self.inner_model = model
        self.sigma_data = 1.0

    def get_scalings(self, sigma: torch.Tensor):
        """(c_out, c_in) of the eps parameterisation."""
        return -sigma, (sigma**2 + self.sigma_data**2).rsqrt()

    def get_eps(self, *args, **kwargs):
        return self.inner_model(*args, **kwargs)

    def loss(self, *args, **kwargs):  # pragma: no cover - training only
        raise NotImplementedError

    def forward(self, input: torch.Tensor, sigma: torch.Tensor, **kwargs) -> torch.Tensor:
        c_out, c_in = (utils.append_dims(c, input.ndim) for c in self.get_scalings(sigma))
        return input + c_out * self.get_eps(input * c_in, self.sigma_to_t(sigma), **kwargs)


class CompVisDenoiser(DiscreteEpsDDPMDenoiser):
    """Models k-diffusion's CompVisDenoiser: the eps model is ``model.apply_model``, the schedule the model's own."""

    def __init__(self, model, quantize: bool = False, device: str = "cpu") -> None:
        super().__init__(model, model.alphas_cumprod, quantize=quantize)

    def get_eps(self, *args, **kwargs):
        return self.inner_model.apply_model(*args, **kwargs)


class DiscreteVDDPMDenoiser(DiscreteSchedule):
    """Models k-diffusion's DiscreteVDDPMDenoiser (v-prediction, Salimans & Ho 2022): with s = sigma^2 + 1,
    D = x / s - sigma v(x / sqrt(s), t(sigma)) / sqrt(s)."""

    def __init__(self, model, alphas_cumprod: torch.Tensor, quantize: bool) -> None:
        super().__init__(_levels_of(alphas_cumprod), quantize)
        self.inner_model = model
        self.sigma_data = 1.0

    def get_scalings(self, sigma: torch.Tensor):
        """(c_skip, c_out, c_in) of the v parameterisation."""
        total = sigma**2 + self.sigma_data**2
        c_in = total.rsqrt()
        return self.sigma_data**2 / total, -sigma * self.sigma_data * c_in, c_in

    def get_v(self, *args, **kwargs):
        return self.inner_model(*args, **kwargs)

    def forward(self, input: torch.Tensor, sigma: torch.Tensor, **kwargs) -> torch.Tensor:
        c_skip, c_out, c_in = (utils.append_dims(c, input.ndim) for c in self.get_scalings(sigma))
        v = self.get_v(input * c_in, self.sigma_to_t(sigma), **kwargs)
        return input * c_skip + v * c_out


class CompVisVDenoiser(DiscreteVDDPMDenoiser):
    """Models k-diffusion's CompVisVDenoiser: v from ``model.apply_model(x, t, cond)``."""

    def __init__(self, model, quantize: bool = False, device: str = "cpu") -> None:
        super().__init__(model, model.alphas_cumprod, quantize=quantize)

    def get_v(self, x, t, cond, **kwargs):
        return self.inner_model.apply_model(x, t, cond)
