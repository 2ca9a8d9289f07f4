"""Stand-in for k_diffusion/utils.py (the helpers the samplers use)."""

import torch


def append_dims(x: torch.Tensor, target_dims: int) -> torch.Tensor:
    """mirrors k_diffusion/utils.py append_dims: adds trailing singleton dims until x has target_dims dims."""
    dims_to_append = target_dims - x.ndim
    if dims_to_append < 0:
        raise ValueError(f"input has {x.ndim} dims but target_dims is {target_dims}, which is less")
    return x[(...,) + (None,) * dims_to_append]


def append_zero(x: torch.Tensor) -> torch.Tensor:
    """mirrors k_diffusion/utils.py append_zero."""
    return torch.cat([x, x.new_zeros([1])])
