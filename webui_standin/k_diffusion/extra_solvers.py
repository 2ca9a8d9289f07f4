"""Stand-in additions to k_diffusion/sampling.py: DPM-Solver fast / adaptive, DPM-Solver++ SDE multistep samplers.

Written for this stand-in from the papers - Lu et al., *DPM-Solver* (arXiv 2206.00927) and *DPM-Solver++*
(arXiv 2211.01095) - and worked out here on the noise level lambda = -log(sigma); no k-diffusion code was used.
What matches k-diffusion as the WebUI v1.10.1 runs it is what an extension can see: each function's signature (the
WebUI picks its arguments by inspecting it), the noise levels the model is evaluated at, how many evaluations there
are, and when ``callback`` fires relative to them. The numbers are a working solver on the same levels, not
bit-identical to k-diffusion's.

``k_diffusion.sampling`` re-exports these functions (the WebUI looks samplers up there by name). It is imported
lazily here, because it imports this module at its end.
"""

from __future__ import annotations

import math

import torch


def _ks():
    """k_diffusion.sampling, looked up at call time: its ``torch`` is the WebUI's TorchHijack during sampling."""
    import k_diffusion.sampling as ks

    return ks


def _level(lam: torch.Tensor) -> torch.Tensor:
    """sigma of a log-SNR-like level lambda = -log(sigma)."""
    return torch.exp(-lam)


def _lam(sigma) -> torch.Tensor:
    return -torch.log(torch.as_tensor(sigma, dtype=torch.float32))


# --- DPM-Solver++ SDE multistep (data prediction) ----------------------------------------------------------------
#
# On lambda the SDE of a VE model with extra noise eta has the exact step, for h = lambda_next - lambda and
# g = (1 + eta) * h:
#   x_next = sigma_next / sigma * exp(-eta h) * x
#            + integral_0^h (1 + eta) exp(-(1 + eta)(h - u)) D(lambda + u) du + noise
# With D(lambda + u) ~ D + u D' + u^2/2 D'' the integral is
#   (1 - e^-g) D + [1 - (1 - e^-g)/g] h D' + [1/2 - (1 - (1 - e^-g)/g)/g] h^2 D''
# and the noise has standard deviation sigma_next * sqrt(1 - e^(-2 eta h)). D' and D'' come from the previous
# steps' denoised values (divided differences on lambda).


def _sde_weights(g: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(weight of D, of h D', of h^2 D'') in the exact integral above."""
    w0 = -torch.expm1(-g)
    w1 = 1 - w0 / g
    w2 = 0.5 - w1 / g
    return w0, w1, w2


def _default_brownian(x: torch.Tensor, sigmas: torch.Tensor):
    positive = sigmas[sigmas > 0]
    return _ks().BrownianTreeNoiseSampler(x, positive.min(), sigmas.max())


@torch.no_grad()
def sample_dpmpp_2m_sde(
    model,
    x,
    sigmas,
    extra_args=None,
    callback=None,
    disable=None,
    eta=1.0,
    s_noise=1.0,
    noise_sampler=None,
    solver_type="midpoint",
):
    """mirrors k_diffusion/sampling.py sample_dpmpp_2m_sde: one evaluation per step at sigmas[i], the callback right
    after it; a step to sigma 0 returns the denoised estimate. solver_type 'midpoint' weighs the slope taken from the
    previous step by half the step's data weight, 'heun' by its exact integral weight."""
    if solver_type not in ("midpoint", "heun"):
        raise ValueError("solver_type must be 'heun' or 'midpoint'")
    extra_args = {} if extra_args is None else extra_args
    if noise_sampler is None:
        noise_sampler = _default_brownian(x, sigmas)
    batch_ones = x.new_ones([x.shape[0]])
    previous = None  # (denoised, h) of the step before
    for i in range(len(sigmas) - 1):
        sigma, sigma_next = sigmas[i], sigmas[i + 1]
        denoised = model(x, sigma * batch_ones, **extra_args)
        if callback is not None:
            callback({"x": x, "i": i, "sigma": sigma, "sigma_hat": sigma, "denoised": denoised})
        if sigma_next == 0:
            x = denoised
            previous = None
            continue
        h = torch.log(sigma / sigma_next)
        w0, w1, _ = _sde_weights((1 + eta) * h)
        x = (sigma_next / sigma) * torch.exp(-eta * h) * x + w0 * denoised
        if previous is not None:
            slope_h = (denoised - previous[0]) * (h / previous[1])  # ~ h * dD/dlambda
            x = x + (w1 if solver_type == "heun" else 0.5 * w0) * slope_h
        if eta:
            x = x + noise_sampler(sigma, sigma_next) * sigma_next * torch.sqrt(-torch.expm1(-2 * eta * h)) * s_noise
        previous = (denoised, h)
    return x


@torch.no_grad()
def sample_dpmpp_3m_sde(
    model, x, sigmas, extra_args=None, callback=None, disable=None, eta=1.0, s_noise=1.0, noise_sampler=None
):
    """mirrors k_diffusion/sampling.py sample_dpmpp_3m_sde: one evaluation per step at sigmas[i], the callback right
    after it; up to two previous denoised values give D' and D'' (a quadratic through three points on lambda)."""
    extra_args = {} if extra_args is None else extra_args
    if noise_sampler is None:
        noise_sampler = _default_brownian(x, sigmas)
    batch_ones = x.new_ones([x.shape[0]])
    history: list[tuple[torch.Tensor, torch.Tensor]] = []  # (denoised, lambda), newest first
    for i in range(len(sigmas) - 1):
        sigma, sigma_next = sigmas[i], sigmas[i + 1]
        denoised = model(x, sigma * batch_ones, **extra_args)
        if callback is not None:
            callback({"x": x, "i": i, "sigma": sigma, "sigma_hat": sigma, "denoised": denoised})
        if sigma_next == 0:
            x = denoised
            continue
        lam = -torch.log(sigma)
        h = torch.log(sigma / sigma_next)
        w0, w1, w2 = _sde_weights((1 + eta) * h)
        x = torch.exp(-(1 + eta) * h) * x + w0 * denoised
        if history:
            d_prev, lam_prev = history[0]
            first = (denoised - d_prev) / (lam - lam_prev)  # divided difference [0, 1]
            if len(history) > 1:
                d_prev2, lam_prev2 = history[1]
                second = (first - (d_prev - d_prev2) / (lam_prev - lam_prev2)) / (lam - lam_prev2)  # [0, 1, 2]
                slope = first + second * (lam - lam_prev)  # derivative of the quadratic at lambda
                x = x + w1 * h * slope + w2 * h * h * 2 * second
            else:
                x = x + w1 * h * first
        if eta:
            x = x + noise_sampler(sigma, sigma_next) * sigma_next * torch.sqrt(-torch.expm1(-2 * eta * h)) * s_noise
        history = [(denoised, lam), *history[:1]]
    return x


# --- DPM-Solver (noise prediction), fixed and adaptive step size --------------------------------------------------
#
# For a VE model x = x0 + sigma * eps, so with eps(x, lambda) = (x - D(x, sigma)) / sigma the exact solution over
# a step h on lambda is  x_next = x - sigma_next * integral_0^h e^u eps(lambda + u) du.  DPM-Solver-k approximates
# eps on the step from evaluations at fractions r of it:
#   k = 1: eps constant                                  -> x - sigma_next (e^h - 1) eps0
#   k = 2: eps linear through 0 and r1                   -> adds -sigma_next (e^h - 1) / (2 r1) (eps1 - eps0)
#   k = 3: intermediate points r1 = 1/3 and r2 = 2/3; the final point uses the slope through 0 and r2:
#          adds -sigma_next / r2 * ((e^h - 1) / h - 1) (eps2 - eps0)
# and the intermediate point r2 itself is reached with the order-2 formula evaluated at r2 h.


class _DPMSolver:
    """Evaluates the model as eps on lambda and takes DPM-Solver-1/2/3 steps, counting every evaluation."""

    def __init__(self, model, extra_args) -> None:
        self.model = model
        self.extra_args = extra_args
        self.evaluations = 0

    def eps(self, x: torch.Tensor, lam: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(eps, denoised) of x at level lambda."""
        sigma = _level(lam)
        denoised = self.model(x, sigma * x.new_ones([x.shape[0]]), **self.extra_args)
        self.evaluations += 1
        return (x - denoised) / sigma, denoised

    @staticmethod
    def _first_order(x, eps0, lam, h):
        return x - _level(lam + h) * torch.expm1(h) * eps0

    def step(self, x, lam, lam_to, order: int, eps0, mid: float | None = None):
        """One DPM-Solver step of the given order from lambda to lambda_to, eps0 being eps(x, lambda). ``mid`` is the
        order-2 intermediate fraction (default 1/2). Returns the new x and the eps values evaluated at the
        intermediate fractions, keyed by fraction (so an order-2 step at 1/3 can share the order-3 step's point)."""
        h = lam_to - lam
        if order == 1:
            return self._first_order(x, eps0, lam, h), {}
        if order == 2:
            r = 0.5 if mid is None else mid
            eps_r, _ = self.eps(self._first_order(x, eps0, lam, r * h), lam + r * h)
            x_next = self._first_order(x, eps0, lam, h) - _level(lam_to) / (2 * r) * torch.expm1(h) * (eps_r - eps0)
            return x_next, {r: eps_r}
        r1, r2 = 1 / 3, 2 / 3
        eps1, _ = self.eps(self._first_order(x, eps0, lam, r1 * h), lam + r1 * h)
        ratio2 = torch.expm1(r2 * h) / (r2 * h) - 1
        u2 = self._first_order(x, eps0, lam, r2 * h) - _level(lam + r2 * h) * (r2 / r1) * ratio2 * (eps1 - eps0)
        eps2, _ = self.eps(u2, lam + r2 * h)
        ratio = torch.expm1(h) / h - 1
        x_next = self._first_order(x, eps0, lam, h) - _level(lam_to) / r2 * ratio * (eps2 - eps0)
        return x_next, {r1: eps1, r2: eps2}

    def second_order_at_third(self, x, lam, lam_to, eps0, eps_third):
        """The order-2 step with its intermediate point at 1/3 of the way, reusing eps there (no evaluation)."""
        h = lam_to - lam
        return self._first_order(x, eps0, lam, h) - _level(lam_to) * 1.5 * torch.expm1(h) * (eps_third - eps0)


def _ancestral_target(lam, lam_next, lam_end, eta: float, forward: bool):
    """With eta > 0 a step to lambda_next goes deterministically to the ancestral sigma_down's level (never past the
    end) and adds noise up to sigma_next: returns (lambda to solve to, noise std)."""
    if not eta:
        return lam_next, 0.0
    sigma_down, _ = _ks().get_ancestral_step(_level(lam), _level(lam_next), eta)
    target = -torch.log(sigma_down)
    target = torch.minimum(lam_end, target) if forward else torch.maximum(lam_end, target)
    return target, (_level(lam_next) ** 2 - _level(target) ** 2).clamp(min=0) ** 0.5


def _setup(model, x, sigma_min, sigma_max, extra_args, eta, noise_sampler):
    """Checks shared by DPM fast and adaptive; returns (lambda start, lambda end, forward?, noise sampler, solver)."""
    if sigma_min <= 0 or sigma_max <= 0:
        raise ValueError("sigma_min and sigma_max must not be 0")
    lam_start, lam_end = _lam(float(sigma_max)), _lam(float(sigma_min))
    forward = bool(lam_end > lam_start)
    if not forward and eta:
        raise ValueError("eta must be 0 for reverse sampling")
    if noise_sampler is None:
        noise_sampler = _ks().default_noise_sampler(x)
    return lam_start, lam_end, forward, noise_sampler, _DPMSolver(model, {} if extra_args is None else extra_args)


def _fast_orders(nfe: int) -> list[int]:
    """DPM-Solver-fast's plan: floor(nfe / 3) + 1 steps of order 3, the last one(s) lowered to spend exactly nfe."""
    steps = nfe // 3 + 1
    if nfe % 3 == 0:
        return [3] * (steps - 2) + [2, 1]
    return [3] * (steps - 1) + [nfe % 3]


@torch.no_grad()
def sample_dpm_fast(
    model,
    x,
    sigma_min,
    sigma_max,
    n,
    extra_args=None,
    callback=None,
    disable=None,
    eta=0.0,
    s_noise=1.0,
    noise_sampler=None,
):
    """mirrors k_diffusion/sampling.py sample_dpm_fast: n evaluations in floor(n/3)+1 steps equally spaced on
    lambda = -log(sigma); the callback fires once per step, after the step's first evaluation (so a step's other
    evaluations and the next step's first see the same counter). With eta > 0 every step aims at the ancestral
    sigma_down, i.e. its intermediate evaluations sit twice as far down as without."""
    lam_start, lam_end, forward, noise_sampler, solver = _setup(
        model, x, sigma_min, sigma_max, extra_args, eta, noise_sampler
    )
    orders = _fast_orders(int(n))
    levels = torch.linspace(float(lam_start), float(lam_end), len(orders) + 1)
    for i, order in enumerate(orders):
        lam, lam_next = levels[i], levels[i + 1]
        target, noise_std = _ancestral_target(lam, lam_next, lam_end, eta, forward)
        eps0, denoised = solver.eps(x, lam)
        if callback is not None:
            sigma = _level(lam)
            callback({"x": x, "i": i, "t": lam, "t_up": lam, "sigma": sigma, "sigma_hat": sigma, "denoised": denoised})
        x, _ = solver.step(x, lam, target, order, eps0)
        if float(noise_std) > 0:
            x = x + noise_std * s_noise * noise_sampler(_level(lam), _level(lam_next))
    return x


class _StepSizeController:
    """PID control of the step size on lambda (Gustafsson-style): the new step is the old one times
    1 + atan(f - 1), f = e0^b1 * e1^b2 * e2^b3 over the inverse errors of this and the last two accepted steps;
    a step is accepted when that factor reaches ``accept_safety``. The step size changes either way."""

    def __init__(self, h, pcoeff, icoeff, dcoeff, order, accept_safety, eps=1e-8) -> None:
        self.h = h
        self.exponents = (
            (pcoeff + icoeff + dcoeff) / order,
            -(pcoeff + 2 * dcoeff) / order,
            dcoeff / order,
        )
        self.accept_safety = accept_safety
        self.eps = eps
        self.inverse_errors: list[float] = []  # this step's, then the last two accepted ones

    def propose(self, error) -> bool:
        inverse = 1.0 / (float(error) + self.eps)
        if not self.inverse_errors:
            self.inverse_errors = [inverse] * 3
        self.inverse_errors[0] = inverse
        raw = 1.0
        for value, exponent in zip(self.inverse_errors, self.exponents, strict=True):
            raw *= value**exponent
        factor = 1 + math.atan(raw - 1)
        accepted = factor >= self.accept_safety
        if accepted:
            self.inverse_errors = [inverse, self.inverse_errors[0], self.inverse_errors[1]]
        self.h *= factor
        return accepted


@torch.no_grad()
def sample_dpm_adaptive(
    model,
    x,
    sigma_min,
    sigma_max,
    extra_args=None,
    callback=None,
    disable=None,
    order=3,
    rtol=0.05,
    atol=0.0078,
    h_init=0.05,
    pcoeff=0.0,
    icoeff=1.0,
    dcoeff=0.0,
    accept_safety=0.81,
    eta=0.0,
    s_noise=1.0,
    noise_sampler=None,
    return_info=False,
):
    """mirrors k_diffusion/sampling.py sample_dpm_adaptive: embedded DPM-Solver-2/3 (order 3: three evaluations per
    attempted step, at its start and at 1/3 and 2/3 of it) or 1/2 (order 2: two), from sigma_max down to sigma_min
    with a step size on lambda chosen by a PID controller from the scaled difference of the two solutions. Rejected
    steps are retried from the same point (re-evaluating it). The callback fires after every attempt, accepted or
    not; the number of evaluations does not depend on the requested step count."""
    if order not in (2, 3):
        raise ValueError("order should be 2 or 3")
    lam_start, lam_end, forward, noise_sampler, solver = _setup(
        model, x, sigma_min, sigma_max, extra_args, eta, noise_sampler
    )
    direction = 1.0 if forward else -1.0
    control = _StepSizeController(abs(h_init) * direction, pcoeff, icoeff, dcoeff, 1.5 if eta else order, accept_safety)
    atol_t, rtol_t = torch.tensor(atol), torch.tensor(rtol)
    info = {"steps": 0, "nfe": 0, "n_accept": 0, "n_reject": 0}
    lam = lam_start
    x_low_last = x

    def unfinished(level) -> bool:
        return bool(level < lam_end - 1e-5) if forward else bool(level > lam_end + 1e-5)

    while unfinished(lam):
        proposed = lam + control.h
        lam_next = torch.minimum(lam_end, proposed) if forward else torch.maximum(lam_end, proposed)
        target, noise_std = _ancestral_target(lam, lam_next, lam_end, eta, forward)
        before = solver.evaluations
        eps0, denoised = solver.eps(x, lam)
        if order == 2:
            x_low, _ = solver.step(x, lam, target, 1, eps0)
            x_high, _ = solver.step(x, lam, target, 2, eps0)
        else:
            x_high, at = solver.step(x, lam, target, 3, eps0)
            x_low = solver.second_order_at_third(x, lam, target, eps0, at[1 / 3])
        scale = torch.maximum(atol_t, rtol_t * torch.maximum(x_low.abs(), x_low_last.abs()))
        error = torch.linalg.norm((x_low - x_high) / scale) / x.numel() ** 0.5
        accepted = control.propose(error)
        info["n_accept" if accepted else "n_reject"] += 1
        info["nfe"] += solver.evaluations - before
        info["steps"] += 1
        if accepted:  # move on; a rejected attempt is retried from the same point with the smaller step
            x_low_last, x = x_low, x_high
            if float(noise_std) > 0:
                x = x + noise_std * s_noise * noise_sampler(_level(lam), _level(lam_next))
            lam = lam_next
        if callback is not None:
            sigma = _level(lam)
            callback(
                {
                    "x": x,
                    "i": info["steps"] - 1,
                    "t": lam,
                    "t_up": lam,
                    "sigma": sigma,
                    "sigma_hat": sigma,
                    "denoised": denoised,
                    "error": error,
                    "h": control.h,
                    **info,
                }
            )
    if return_info:
        return x, info
    return x
