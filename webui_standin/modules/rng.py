"""Stand-in for modules/rng.py: per-seed noise generators (batch items do not depend on the batch size)."""

from __future__ import annotations

import torch
from modules import devices, shared


def randn(seed: int, shape) -> torch.Tensor:
    """Models modules/rng.py randn: noise of one seed."""
    return devices.randn_local(seed, shape)


def create_generator(seed: int) -> torch.Generator:
    """Models modules/rng.py create_generator (the CPU noise source)."""
    return torch.Generator(device="cpu").manual_seed(int(seed))


class ImageRNG:
    """Models modules/rng.py ImageRNG: first() gives each image's initial noise from its own seed (mixed by
    spherical interpolation with its variation seed's noise when subseed_strength is set); next() continues each
    image's generator (used for sampler noise through TorchHijack).  A non-zero opts.eta_noise_seed_delta restarts
    the generators from seed + delta once the initial noise is drawn."""

    def __init__(
        self,
        shape,
        seeds,
        subseeds=None,
        subseed_strength: float = 0.0,
        seed_resize_from_h: int = 0,
        seed_resize_from_w: int = 0,
    ) -> None:
        self.shape = tuple(int(n) for n in shape)
        self.seeds, self.subseeds, self.subseed_strength = seeds, subseeds, subseed_strength
        self.seed_resize_from_h, self.seed_resize_from_w = seed_resize_from_h, seed_resize_from_w
        self.generators = list(map(create_generator, seeds))
        self.is_first = True

    def _draw(self, generator: torch.Generator) -> torch.Tensor:
        return torch.randn(self.shape, generator=generator)

    def _variation(self, index: int) -> torch.Tensor:
        """The noise of image ``index``'s variation seed (seed 0 for images beyond the list)."""
        subseed = self.subseeds[index] if index < len(self.subseeds) else 0
        return self._draw(create_generator(subseed))

    def first(self) -> torch.Tensor:
        mixing = self.subseeds is not None and self.subseed_strength != 0
        noises = []
        for index, generator in enumerate(self.generators):
            own = self._draw(generator)
            noises.append(slerp(self.subseed_strength, own, self._variation(index)) if mixing else own)
        delta = shared.opts.eta_noise_seed_delta or 0
        if delta:
            self.generators = [create_generator(seed + delta) for seed in self.seeds]
        return torch.stack(noises).to(shared.device)

    def next(self) -> torch.Tensor:
        if self.is_first:
            self.is_first = False
            return self.first()
        return torch.stack([self._draw(g) for g in self.generators]).to(shared.device)


def slerp(val: float, low: torch.Tensor, high: torch.Tensor) -> torch.Tensor:
    """Models modules/rng.py slerp: per row, spherical interpolation from ``low`` (val 0) to ``high`` (val 1); rows
    that are nearly parallel (mean cosine above 0.9995) are mixed linearly as low * val + high * (1 - val) - the
    WebUI's weights, which run the other way round."""
    unit_low, unit_high = (t / torch.norm(t, dim=1, keepdim=True) for t in (low, high))
    cosine = (unit_low * unit_high).sum(1)
    if cosine.mean() > 0.9995:
        return low * val + high * (1 - val)
    angle = torch.acos(cosine)
    sine = torch.sin(angle)
    weight_low = (torch.sin((1.0 - val) * angle) / sine).unsqueeze(1)
    weight_high = (torch.sin(val * angle) / sine).unsqueeze(1)
    return weight_low * low + weight_high * high
