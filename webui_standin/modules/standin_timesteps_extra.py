"""Stand-in for the WebUI v1.10.1 timestep samplers 'DDIM CFG++' and 'UniPC' (sd_samplers_timesteps_impl.ddim_cfgpp,
sd_samplers_timesteps_impl.unipc and modules/models/diffusion/uni_pc).

Written for this stand-in from the papers - Chung et al., *CFG++* (arXiv 2406.08070); Zhao et al., *UniPC*
(arXiv 2302.04867); the discrete-time VP schedule of Lu et al., *DPM-Solver* - and from what the WebUI shows an
extension; no WebUI code was used. Like DDIM/PLMS, both pass the model *timestep* where k-diffusion samplers pass
sigma, so ``params.sigma`` of the CFG-denoiser callback holds a timestep.
"""

from __future__ import annotations

import math

import k_diffusion.sampling
import torch
from modules import shared

# --- DDIM CFG++ --------------------------------------------------------------------------------------------------


@torch.no_grad()
def ddim_cfgpp(model, x, timesteps, extra_args=None, callback=None, disable=None, eta=0.0):
    """mirrors sd_samplers_timesteps_impl.ddim_cfgpp: DDIM over the same timesteps (highest first, len - 1
    evaluations, the last step landing on timesteps[0]), but the CFG scale is divided by 12.5 (the denoiser's
    ``cond_scale_miltiplier``) and the re-noising direction is the *unconditional* noise prediction (CFG++), which the
    denoiser keeps when ``need_last_noise_uncond`` is set. The callback fires after each step."""
    alphas_cumprod = model.inner_model.inner_model.alphas_cumprod
    model.cond_scale_miltiplier = 1 / 12.5
    model.need_last_noise_uncond = True
    extra_args = {} if extra_args is None else extra_args
    batch_ones = x.new_ones(x.shape[0])
    count = len(timesteps)
    for i in range(count - 1):
        now = int(timesteps[count - 1 - i])
        then = int(timesteps[count - 2 - i])
        a_now = alphas_cumprod[now].double().item()
        a_then = alphas_cumprod[then].double().item()

        eps_guided = model(x, now * batch_ones, **extra_args)
        eps_uncond = model.last_noise_uncond

        x0 = (x - math.sqrt(1 - a_now) * eps_guided) / math.sqrt(a_now)
        spread = eta * math.sqrt((1 - a_then) / (1 - a_now) * (1 - a_now / a_then))  # DDIM's sigma_t(eta)
        x = math.sqrt(a_then) * x0 + math.sqrt(max(1 - a_then - spread**2, 0.0)) * eps_uncond
        if spread > 0:
            x = x + spread * k_diffusion.sampling.torch.randn_like(x)

        if callback is not None:
            callback({"x": x, "i": i, "sigma": 0, "sigma_hat": 0, "denoised": x0})
    return x


# --- UniPC --------------------------------------------------------------------------------------------------------


def _interp(query: torch.Tensor, xs: torch.Tensor, ys: torch.Tensor) -> torch.Tensor:
    """Piecewise-linear y(query) through ascending xs, continued linearly past both ends."""
    flat = query.reshape(-1).to(xs.dtype)
    segment = (torch.searchsorted(xs, flat) - 1).clamp(0, len(xs) - 2)
    x0, x1, y0, y1 = xs[segment], xs[segment + 1], ys[segment], ys[segment + 1]
    return (y0 + (flat - x0) * (y1 - y0) / (x1 - x0)).reshape(query.shape)


class DiscreteVPSchedule:
    """The discrete DDPM schedule on continuous time: training step n (0-based) of N sits at t = (n + 1) / N, and
    log(alpha_t) = log(alphas_cumprod) / 2 is piecewise linear in t. sigma_t = sqrt(1 - alpha_t^2) and
    lambda_t = log(alpha_t / sigma_t); the model sees the timestep 1000 * (t - 1 / N)."""

    def __init__(self, alphas_cumprod: torch.Tensor) -> None:
        self.total = len(alphas_cumprod)
        self.grid = torch.arange(1, self.total + 1, dtype=torch.float64) / self.total
        self.log_alpha_table = 0.5 * torch.log(alphas_cumprod.detach().cpu().double())

    def log_alpha(self, t: torch.Tensor) -> torch.Tensor:
        return _interp(t, self.grid, self.log_alpha_table)

    def alpha(self, t):
        return torch.exp(self.log_alpha(t))

    def sigma(self, t):
        return torch.sqrt(-torch.expm1(2 * self.log_alpha(t)))

    def lam(self, t):
        return self.log_alpha(t) - torch.log(self.sigma(t))

    def t_of_lambda(self, lam: torch.Tensor) -> torch.Tensor:
        log_alpha = -0.5 * torch.log1p(torch.exp(-2 * lam))  # alpha^2 + sigma^2 = 1
        return _interp(log_alpha, self.log_alpha_table.flip(0), self.grid.flip(0))

    def model_time(self, t: torch.Tensor) -> torch.Tensor:
        return (t - 1 / self.total) * 1000

    def time_grid(self, skip_type: str, t_from: float, t_to: float, steps: int) -> torch.Tensor:
        """steps + 1 times from t_from to t_to: uniform in t, in sqrt(t) ('time_quadratic') or in lambda."""
        if skip_type == "time_uniform":
            return torch.linspace(t_from, t_to, steps + 1, dtype=torch.float64)
        if skip_type == "time_quadratic":
            return torch.linspace(math.sqrt(t_from), math.sqrt(t_to), steps + 1, dtype=torch.float64) ** 2
        if skip_type == "logSNR":
            ends = self.lam(torch.tensor([t_from, t_to], dtype=torch.float64))
            return self.t_of_lambda(torch.linspace(float(ends[0]), float(ends[1]), steps + 1, dtype=torch.float64))
        raise ValueError(f"Unsupported skip_type {skip_type}: use 'logSNR', 'time_uniform' or 'time_quadratic'")


def _psi(z: float, count: int) -> list[float]:
    """psi_0 = e^z - 1 and psi_k = psi_(k-1) / z - 1/k!: psi_k = (e^z - sum_(j<=k) z^j/j!) / z^k, the weight of the
    k-th scaled derivative in the exponential integral of a Taylor polynomial."""
    values = [math.expm1(z)]
    for k in range(1, count + 1):
        values.append(values[-1] / z - 1 / math.factorial(k))
    return values


class UniPCSolver:
    """UniPC multistep in data-prediction form (the WebUI uses predict_x0=True, no thresholding).

    One step from the newest stored point (t0, m0) to t, with h = lambda_t - lambda_t0 and z = -h:
      base = sigma_t / sigma_t0 * x - alpha_t * (e^z - 1) * m0                      (DDIM / DPM-Solver-1)
      x_t  = base - alpha_t * sum_k psi_k(z) * delta_k                              (higher-order terms)
    where delta_k estimates h^k times the k-th derivative of the data prediction on lambda, from the stored
    points at ratios r_i = (lambda_i - lambda_0) / h (and, for the corrector, the new point at r = 1). UniP
    (predictor) uses the stored points only; UniC (corrector) evaluates the model at the predicted x_t and redoes
    the step including that point; the evaluation is reused as the next step's stored point.

    Variants: 'bh1' / 'bh2' write the higher-order terms as B(h) * sum_i a_i D_i with D_i = (m_i - m0) / r_i,
    B(h) = z ('bh1') or e^z - 1 ('bh2') and sum_i a_i r_i^(k-1) = k! psi_k(z) / B(h) for k = 1..p (a single
    coefficient is 1/2); 'vary_coeff' solves sum_k delta_k r_i^(k-1) / k! = D_i for the deltas directly.
    """

    def __init__(self, eps_model, schedule: DiscreteVPSchedule, variant: str = "bh1") -> None:
        if variant not in ("bh1", "bh2", "vary_coeff"):
            raise NotImplementedError(f"UniPC variant {variant}")
        self.eps_model = eps_model
        self.schedule = schedule
        self.variant = variant

    def data_prediction(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        ns = self.schedule
        t_batch = t.expand(x.shape[0])
        eps = self.eps_model(x, ns.model_time(t_batch).to(x.dtype))
        return (x - ns.sigma(t).item() * eps) / ns.alpha(t).item()

    def _higher_order(self, z: float, ratios: list[float], diffs: list[torch.Tensor]) -> torch.Tensor | float:
        """sum_k psi_k(z) delta_k from the divided differences D_i at ratios r_i (order p = len(ratios))."""
        p = len(ratios)
        if p == 0:
            return 0.0
        psi = _psi(z, p)
        r = torch.tensor(ratios, dtype=torch.float64)
        powers = torch.stack([r**k for k in range(p)])  # row k: r_i^k
        stacked = torch.stack(diffs, dim=0)
        if self.variant == "vary_coeff":
            factorials = torch.tensor([math.factorial(k + 1) for k in range(p)], dtype=torch.float64)
            deltas_from_diffs = torch.linalg.inv(powers.T / factorials)  # delta = C^-1 D, C[i][k] = r_i^k / (k+1)!
            weights = torch.tensor(psi[1 : p + 1], dtype=torch.float64) @ deltas_from_diffs
        else:
            b_h = z if self.variant == "bh1" else math.expm1(z)
            if p == 1:
                a = torch.tensor([0.5], dtype=torch.float64)
            else:
                rhs = torch.tensor([math.factorial(k) * psi[k] / b_h for k in range(1, p + 1)], dtype=torch.float64)
                a = torch.linalg.solve(powers, rhs)
            weights = b_h * a
        return torch.einsum("i,i...->...", weights.to(stacked.dtype), stacked)

    def step(self, x, history, t, order: int, correct: bool):
        """One step from history[-1] to t using the newest ``order`` stored points. Returns (x_t, model value at the
        predicted x_t, or None without the corrector)."""
        ns = self.schedule
        t0, m0 = history[-1]
        lam0, lam_t = ns.lam(t0).item(), ns.lam(t).item()
        h = lam_t - lam0
        z = -h
        alpha_t = ns.alpha(t).item()
        base = ns.sigma(t).item() / ns.sigma(t0).item() * x - alpha_t * math.expm1(z) * m0

        ratios, diffs = [], []
        for ti, mi in reversed(history[-order:-1]):
            r = (ns.lam(ti).item() - lam0) / h
            ratios.append(r)
            diffs.append((mi - m0) / r)
        x_t = base - alpha_t * self._higher_order(z, ratios, diffs)
        if not correct:
            return x_t, None
        m_t = self.data_prediction(x_t, t)
        x_t = base - alpha_t * self._higher_order(z, [*ratios, 1.0], [*diffs, m_t - m0])
        return x_t, m_t

    def sample(
        self, x, steps, t_start=None, skip_type="time_uniform", order=3, lower_order_final=True, after_step=None
    ):
        """Multistep UniPC over ``steps`` steps from t_start (default 1) to t = 1/N: the model is evaluated once at the
        start and then once per step except the last (the corrector's evaluation), so ``steps`` evaluations in all;
        ``after_step(x, model value)`` runs after each step, i.e. after the evaluation at the step's end point."""
        ns = self.schedule
        if steps < order:
            raise AssertionError("UniPC order must be < sampling steps")
        t_from = 1.0 if t_start is None else float(t_start)
        times = ns.time_grid(skip_type, t_from, 1 / ns.total, steps)
        history = [(times[0], self.data_prediction(x, times[0]))]
        for k in range(1, steps + 1):
            if k < order:
                step_order, correct = k, True  # warm-up with the points available so far
            else:
                step_order = min(order, steps + 1 - k) if lower_order_final else order
                correct = k < steps  # nothing is evaluated at the final time
            x, m_new = self.step(x, history, times[k], step_order, correct)
            if after_step is not None:
                after_step(x, m_new)
            if k < steps:
                history = [*history, (times[k], m_new)][-order:]
        return x


def unipc(model, x, timesteps, extra_args=None, callback=None, disable=None, is_img2img=False):
    """mirrors sd_samplers_timesteps_impl.unipc: len(timesteps) UniPC steps with the options uni_pc_variant,
    uni_pc_skip_type, uni_pc_order, uni_pc_lower_order_final; txt2img starts at t = 1 (timestep 999), img2img at
    t = timesteps[-1] / 1000 + 1 / 1000. The callback is the UniPC after-update hook: it fires after each step, i.e.
    after the evaluation that follows the step, with a running index, so the WebUI's counter reads 0 for the first three
    evaluations."""
    extra_args = {} if extra_args is None else extra_args
    schedule = DiscreteVPSchedule(model.inner_model.inner_model.alphas_cumprod)
    t_start = float(timesteps[-1]) / 1000 + 1 / 1000 if is_img2img else None
    solver = UniPCSolver(lambda xx, tt: model(xx, tt, **extra_args), schedule, variant=shared.opts.uni_pc_variant)
    index = 0

    def after_step(x_now, model_value):
        nonlocal index
        if callback is not None:
            callback({"x": x_now, "i": index, "sigma": 0, "sigma_hat": 0, "denoised": model_value})
        index += 1

    with torch.no_grad():
        return solver.sample(
            x,
            steps=len(timesteps),
            t_start=t_start,
            skip_type=shared.opts.uni_pc_skip_type,
            order=shared.opts.uni_pc_order,
            lower_order_final=shared.opts.uni_pc_lower_order_final,
            after_step=after_step,
        )
