"""Stand-in for modules/rng.py: per-seed noise generators (batch items do not depend on the batch size)."""

from __future__ import annotations

import torch
from modules import devices, shared


def randn(seed: int, shape) -> torch.Tensor:  # mirrors modules/rng.py randn
    return devices.randn_local(seed, shape)


def create_generator(seed: int) -> torch.Generator:  # mirrors modules/rng.py create_generator (CPU source)
    return torch.Generator(device="cpu").manual_seed(int(seed))


class ImageRNG:
    """mirrors modules/rng.py ImageRNG: first() gives each image's initial noise from its own seed; next() continues
    each image's generator (used for sampler noise through TorchHijack)."""

    def __init__(
        self,
        shape,
        seeds,
        subseeds=None,
        subseed_strength: float = 0.0,
        seed_resize_from_h: int = 0,
        seed_resize_from_w: int = 0,
    ) -> None:
        self.shape = tuple(map(int, shape))
        self.seeds = seeds
        self.subseeds = subseeds
        self.subseed_strength = subseed_strength
        self.seed_resize_from_h = seed_resize_from_h
        self.seed_resize_from_w = seed_resize_from_w
        self.generators = [create_generator(seed) for seed in seeds]
        self.is_first = True

    def first(self) -> torch.Tensor:
        xs = []
        for i, generator in enumerate(self.generators):
            noise = torch.randn(self.shape, generator=generator)
            if self.subseeds is not None and self.subseed_strength != 0:
                subseed = 0 if i >= len(self.subseeds) else self.subseeds[i]
                subnoise = torch.randn(self.shape, generator=create_generator(subseed))
                noise = slerp(self.subseed_strength, noise, subnoise)
            xs.append(noise)
        eta_noise_seed_delta = shared.opts.eta_noise_seed_delta or 0
        if eta_noise_seed_delta:
            self.generators = [create_generator(seed + eta_noise_seed_delta) for seed in self.seeds]
        return torch.stack(xs).to(shared.device)

    def next(self) -> torch.Tensor:
        if self.is_first:
            self.is_first = False
            return self.first()
        xs = [torch.randn(self.shape, generator=generator) for generator in self.generators]
        return torch.stack(xs).to(shared.device)


def slerp(val: float, low: torch.Tensor, high: torch.Tensor) -> torch.Tensor:  # mirrors modules/rng.py slerp
    low_norm = low / torch.norm(low, dim=1, keepdim=True)
    high_norm = high / torch.norm(high, dim=1, keepdim=True)
    dot = (low_norm * high_norm).sum(1)
    if dot.mean() > 0.9995:
        return low * val + high * (1 - val)
    omega = torch.acos(dot)
    so = torch.sin(omega)
    res = (torch.sin((1.0 - val) * omega) / so).unsqueeze(1) * low + (torch.sin(val * omega) / so).unsqueeze(1) * high
    return res
