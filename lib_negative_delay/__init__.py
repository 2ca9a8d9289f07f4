"""Negative Prompt Delay: apply the negative prompt only from a chosen sampling step.

The package is split in two halves:

- a host-agnostic core (``schedule``, ``conditioning``, ``settings``) that knows nothing of the WebUI;
- ``lib_negative_delay.webui``, the thin adapter that wires the core into AUTOMATIC1111's WebUI.

``toy`` holds the small bundled diffusion model used by the demo and the benchmark.
"""

VERSION = "0.6.0"
"""The extension's version (semantic; CHANGELOG.md): in the per-generation log line and the Settings section."""
TITLE = "Negative Prompt Delay"
INFOTEXT_KEY = "Negative delay"
XYZ_PREFIX = "[Negative Delay]"
MAX_DELAY = 150  # the WebUI's own maximum number of sampling steps

__all__ = ["VERSION", "TITLE", "INFOTEXT_KEY", "XYZ_PREFIX", "MAX_DELAY"]
