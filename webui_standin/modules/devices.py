"""Stand-in for modules/devices.py (CPU only)."""

from __future__ import annotations

import contextlib

import torch

cpu = torch.device("cpu")
device = cpu
device_interrogate = cpu
device_gfpgan = cpu
device_esrgan = cpu
device_codeformer = cpu
dtype = torch.float32
dtype_vae = torch.float32
dtype_unet = torch.float32
dtype_inference = torch.float32
unet_needs_upcast = False
fp8 = False


def autocast(disable: bool = False):  # mirrors modules/devices.py autocast (fp32 on CPU: a null context)
    return contextlib.nullcontext()


def without_autocast(disable: bool = False):  # mirrors modules/devices.py without_autocast
    return contextlib.nullcontext()


def torch_gc() -> None:  # mirrors modules/devices.py torch_gc
    pass


def test_for_nans(x, where) -> None:  # mirrors modules/devices.py test_for_nans (disabled like --disable-nan-check)
    pass


def manual_seed(seed: int) -> None:  # mirrors modules/devices.py manual_seed
    torch.manual_seed(seed)


def randn(seed: int, shape, generator: torch.Generator | None = None) -> torch.Tensor:
    """mirrors modules/devices.py randn (CPU RNG source)."""
    if generator is None:
        generator = torch.Generator(device="cpu").manual_seed(int(seed))
    return torch.randn(tuple(shape), generator=generator, device="cpu").to(device)


def randn_local(seed: int, shape) -> torch.Tensor:  # mirrors modules/devices.py randn_local
    generator = torch.Generator(device="cpu").manual_seed(int(seed))
    return torch.randn(tuple(shape), generator=generator, device="cpu").to(device)


def randn_like(x: torch.Tensor) -> torch.Tensor:  # mirrors modules/devices.py randn_like
    return torch.randn_like(x, device="cpu").to(x.device)


def randn_without_seed(shape, generator: torch.Generator | None = None) -> torch.Tensor:
    """mirrors modules/devices.py randn_without_seed."""
    return torch.randn(tuple(shape), generator=generator, device="cpu").to(device)
