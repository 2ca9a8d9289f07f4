"""Stand-in for the k-diffusion package (crowsonkb/k-diffusion as vendored by the WebUI)."""

from k_diffusion import external, sampling, utils  # noqa: F401
