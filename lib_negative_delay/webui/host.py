"""Which WebUI runs the extension: AUTOMATIC1111 or one of its forks (detected once, at first use).

The forks keep A1111's ``cfg_denoiser`` callback but build the cond/uncond batch themselves, so what the
extension sees there differs (facts and citations: ``docs/forks.md``):

- ``params.x`` / ``params.sigma`` hold one row per image, and ``params.sigma`` is a real sigma also for the
  timestep samplers (DDIM, PLMS, UniPC), which pass a model timestep in A1111;
- no fork calls ``cfg_denoised``: auto mode measures in the fork's post-CFG hook instead (``forge_auto.py``);
- Forge and Neo give no ``text_uncond`` at CFG scale 1.

Detection order (``docs/forks.md`` §1): ``modules_forge.forge_version.version`` is "classic" / "neo" for
Haoming02's forks, starts with "1.0.0v2" for reForge; otherwise the ``backend`` package marks Forge, or
reForge 2 when ``modules.sd_samplers_kdiffusion_smea`` exists too.  No ``modules_forge``: AUTOMATIC1111.
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
from dataclasses import dataclass

A1111 = "a1111"
FORGE1 = "forge1"  # ldm_patched backend: Forge Classic, reForge
FORGE2 = "forge2"  # backend/ package: Forge, Forge Neo, reForge 2


@dataclass(frozen=True)
class Host:
    name: str  # "AUTOMATIC1111", "Forge", "Forge Neo", "Forge Classic", "reForge", "reForge 2"
    family: str  # A1111, FORGE1 or FORGE2
    version: str = ""

    @property
    def label(self) -> str:
        return f"{self.name} {self.version}".strip()

    @property
    def is_fork(self) -> bool:
        return self.family != A1111

    @property
    def sigma_is_timestep(self) -> bool:
        """Timestep samplers pass a model timestep as ``params.sigma`` (A1111 only)."""
        return self.family == A1111


def _has(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        return False


def classify(version: str | None, has_backend: bool, has_smea: bool) -> Host:
    """The host from its markers (``version``: ``modules_forge.forge_version.version``, None if absent)."""
    if version is None:
        return Host("AUTOMATIC1111", A1111)
    if version == "classic":
        return Host("Forge Classic", FORGE1, version)
    if version == "neo":
        return Host("Forge Neo", FORGE2, version)
    if version.startswith("1.0.0v2"):
        return Host("reForge", FORGE1, version)
    if has_backend:
        return Host("reForge 2" if has_smea else "Forge", FORGE2, version)
    return Host("Forge (unknown branch)", FORGE1, version)


# The last answer and the ``modules_forge.forge_version`` module object (None in A1111) it was made for. The
# object itself is kept, not its id(): a freed module's id can be reused by the next one, which would answer
# for the wrong host.
_detected: list[tuple[object, Host]] = []


def detect() -> Host:
    """The running host.  Cached per ``modules_forge.forge_version`` module object (None in A1111), so a
    process whose modules change (the stand-in switching hosts between tests) detects again."""
    marker = sys.modules.get("modules_forge.forge_version")
    if _detected and _detected[0][0] is marker:  # also A1111's cached answer: no failing import per generation
        return _detected[0][1]
    if marker is None:
        try:
            marker = importlib.import_module("modules_forge.forge_version")
        except Exception:
            marker = None
    if not (_detected and _detected[0][0] is marker):
        version = None if marker is None else str(getattr(marker, "version", ""))
        has_backend = version is not None and _has("backend.sampling.sampling_function")
        has_smea = has_backend and _has("modules.sd_samplers_kdiffusion_smea")
        _detected[:] = [(marker, classify(version, has_backend, has_smea))]
    return _detected[0][1]


def panel_note(running: Host) -> str:
    """What the panel says about this host's limits (empty on AUTOMATIC1111)."""
    if not running.is_fork:
        return ""
    note = f"{running.name}: SD1, SD2 and SDXL models; auto-detect measures in the fork's post-CFG hook."
    if running.name == "Forge Classic":
        note += " Before Classic 1.9, Skip Early CFG drops the negative prompt at step 0: a delay of 1 changes nothing."
    if running.family == FORGE2:
        note += " At CFG scale 1 there is no negative prompt to delay."
    return note


def forget() -> None:
    """Detect again at the next call (tests switch the stand-in between hosts)."""
    _detected.clear()
