"""Toy text-to-image diffusion model ("shapes with hats") used to demo and measure negative prompt delay on CPU."""

from .model import ToyLDM
from .presence import accessory_present, accessory_region, accessory_score

__all__ = ["ToyLDM", "accessory_present", "accessory_region", "accessory_score"]
