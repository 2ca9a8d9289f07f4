"""The extension in the forks (stand-in fork flavours, see webui_standin/fork_flavour/ and docs/forks.md):
the same rows as in AUTOMATIC1111, auto mode through the post-CFG hook, CFG scale 1, the forks' quirks."""

from __future__ import annotations

import fork_flavour
import harness
import numpy as np
import pytest
import torch
from conftest import ROOT, TITLE, Recorder
from fake_models import FakeSD1Model, FakeSDXLModel
from modules import script_callbacks

from lib_negative_delay import VERSION
from lib_negative_delay.webui import host

FORKS = ["forge", "neo", "classic", "classic-1.8", "reforge"]
SAME_AS_A1111 = ["forge", "neo", "classic", "reforge"]  # classic-1.8 skips the uncond at evaluation 0


@pytest.fixture
def start():
    """start(host, model=None) -> (model, recorder): the stand-in as ``host`` with the extension; A1111 after."""

    def run(name: str, model=None):
        model = model or FakeSD1Model()
        harness.start(str(ROOT), model, host=name)
        recorder = Recorder()
        script_callbacks.on_cfg_denoiser(recorder)
        return model, recorder

    yield run
    fork_flavour.select("a1111")


def generate(rec: Recorder, tab: str = "txt2img", args: list | None = None, **fields):
    rec.clear()
    fields.setdefault("prompt", "a cat")
    fields.setdefault("negative_prompt", "glasses")
    fields.setdefault("seed", 5)
    if args is not None:
        fields["alwayson_scripts"] = {TITLE: {"args": args}}
    if tab == "img2img":
        return harness.img2img([torch.full((3, 64, 64), 0.5)], **fields)
    return harness.txt2img(**fields)


def rows_pattern(rec: Recorder, negative: torch.Tensor) -> list[str]:
    """Per evaluation, per image row: N where the UNet gets the real negative, E where it gets anything else."""
    out = []
    for e in rec.evaluations:
        u = e.uncond["crossattn"] if isinstance(e.uncond, dict) else e.uncond
        out.append("".join("N" if torch.equal(row, negative) else "E" for row in u))
    return out


def negative_row(rec: Recorder, **fields) -> torch.Tensor:
    generate(rec, args=[False, 0], steps=1, **fields)
    u = rec.evaluations[0].uncond
    return (u["crossattn"] if isinstance(u, dict) else u)[0]


ROUNDING = 1e-4  # float rounding between an auto switch and its fixed delay (pixels are in [0, 1])
CHANGED = 1e-2  # a real difference


def pixels(result) -> list[np.ndarray]:
    return [np.asarray(im, dtype=np.float64) for im in result.images]


CASES = [
    ("txt2img", {"sampler_name": "Euler", "steps": 6, "batch_size": 2}, 2),
    ("txt2img", {"sampler_name": "Heun", "steps": 6}, 3),
    ("txt2img", {"sampler_name": "DDIM", "steps": 8}, 3),
    ("txt2img", {"sampler_name": "PLMS", "steps": 6}, 2),
    ("img2img", {"sampler_name": "DDIM", "steps": 8, "denoising_strength": 0.6}, 5),
    ("img2img", {"sampler_name": "Euler", "steps": 8, "denoising_strength": 0.6}, 5),
    (
        "txt2img",
        {"steps": 8, "enable_hr": True, "hr_second_pass_steps": 4, "denoising_strength": 0.6, "hr_cfg": 7.0},
        3,
    ),
]


@pytest.mark.parametrize("name", SAME_AS_A1111)
@pytest.mark.parametrize(("tab", "fields", "delay"), CASES)
def test_fixed_delay_gives_the_rows_it_gives_in_a1111(start, name, tab, fields, delay):
    """Timestep samplers pass a model timestep in A1111 and a sigma in the forks: the delay's noise level
    is the same, so the rows that get the empty prompt must be the same."""
    patterns = {}
    for which in ("a1111", name):
        _, rec = start(which)
        negative = negative_row(rec)
        generate(rec, tab, [True, delay], **fields)
        patterns[which] = rows_pattern(rec, negative)
    assert patterns[name] == patterns["a1111"]
    assert "E" in "".join(patterns[name]) and "N" in "".join(patterns[name])


SHARE_CASES = [
    ("txt2img", {"sampler_name": "Euler", "steps": 10, "batch_size": 2}, "30%", 3),
    ("txt2img", {"sampler_name": "Heun", "steps": 8}, "25%", 2),
    ("img2img", {"sampler_name": "DDIM", "steps": 10, "denoising_strength": 0.6}, "50%", 5),
    (
        "txt2img",
        {"steps": 8, "enable_hr": True, "hr_second_pass_steps": 4, "denoising_strength": 0.6, "hr_cfg": 7.0},
        "37.5%",
        3,
    ),
]


@pytest.mark.parametrize("name", FORKS)
@pytest.mark.parametrize(("tab", "fields", "share", "delay"), SHARE_CASES)
def test_a_share_gives_the_rows_of_its_step_delay_in_every_fork(start, name, tab, fields, share, delay):
    _, rec = start(name)
    negative = negative_row(rec)
    patterns = {}
    for args in ([True, delay], [True, share], [True, float(share[:-1]), False, 0.3, 20, 35, "%"]):
        generate(rec, tab, args, **fields)
        patterns[str(args)] = rows_pattern(rec, negative)
    assert len(set(map(str, patterns.values()))) == 1
    assert "E" in "".join(patterns[str([True, delay])])


def test_share_in_the_log_line_of_a_fork(start, ext_log):
    _, rec = start("neo")
    generate(rec, args=[True, "20%"], steps=10)
    assert ext_log.messages == [f"negative prompt from 20 % — step 2 of 10 [Forge Neo neo, extension v{VERSION}]"]


def test_host_is_detected_and_named_in_the_log_line(start, ext_log):
    _, rec = start("classic")
    generate(rec, args=[True, 2], steps=6)
    assert host.detect().name == "Forge Classic"
    assert ext_log.messages == [f"negative prompt from step 2 of 6 [Forge Classic classic, extension v{VERSION}]"]


def auto_run(rec: Recorder, **fields):
    res = generate(rec, args=[True, 4, True, 0.5, 1, 4], steps=8, batch_size=2, **fields)
    text = res.infotexts[0]
    steps = [int(x) for x in text.split("Negative delay steps: ")[1].split(",")[0].split()]
    return res, steps


@pytest.mark.parametrize("name", SAME_AS_A1111)
def test_auto_mode_measures_in_the_post_cfg_hook(start, ext_log, name):
    model, rec = start("a1111")
    _, a1111_steps = auto_run(rec)
    model, rec = start(name)
    model.reset_calls()
    res, steps = auto_run(rec)
    auto_rows = sum(c.x_shape[0] for c in model.calls)
    assert steps == a1111_steps
    assert not ext_log.at(30) and not ext_log.at(40)  # no fallback warning, no error
    # each image equals the one a fixed delay at its own switch step gives
    for i, k in enumerate(steps):
        fixed = generate(rec, args=[True, k], steps=8, batch_size=2)
        assert np.abs(pixels(res)[i] - pixels(fixed)[i]).max() <= ROUNDING, (i, k)
    # the extra model work: the probed images (every row of the batch) at each probed step 1..min(k)-ish
    model.reset_calls()
    generate(rec, args=[True, 4], steps=8, batch_size=2)
    fixed_rows = sum(c.x_shape[0] for c in model.calls)
    probed_steps = max(min(k, 3) for k in steps) - 1 + 1
    assert auto_rows - fixed_rows == 2 * probed_steps


def test_auto_mode_differs_from_off_where_it_switches_late(start):
    """The post-CFG hook really replaces the uncond's share: a switch at step k is not the extension off."""
    _, rec = start("forge")
    res, steps = auto_run(rec)
    off = generate(rec, args=[False, 0], steps=8, batch_size=2)
    for i, k in enumerate(steps):
        if k > 1:
            assert np.abs(pixels(res)[i] - pixels(off)[i]).max() > CHANGED


def test_auto_mode_falls_back_visibly_when_the_hook_does_not_run(start, ext_log, monkeypatch):
    """A sampler that bypasses the post-CFG functions (the forks' CFG++ samplers, a refiner switch)."""
    from lib_negative_delay.webui import forge_auto

    _, rec = start("classic")
    monkeypatch.setattr(forge_auto.Seam, "post_cfg", lambda self, args: args["denoised"])
    res = generate(rec, args=[True, 3, True, 0.5, 0, 4], steps=8)
    assert any("did not run its post-CFG hook" in m and "fixed delay 3" in m for m in ext_log.at(30))
    negative = negative_row(rec)
    generate(rec, args=[True, 3, True, 0.5, 0, 4], steps=8)
    assert rows_pattern(rec, negative) == ["E"] * 3 + ["N"] * 5
    assert "Negative delay: auto" in res.infotexts[0]


@pytest.mark.parametrize("name", ["forge", "neo"])
def test_cfg_scale_1_has_no_uncond_and_is_a_logged_no_op(start, ext_log, name):
    _, rec = start(name)
    off = generate(rec, args=[False, 0], steps=6, cfg_scale=1.0)
    on = generate(rec, args=[True, 3], steps=6, cfg_scale=1.0)
    assert all(e.uncond is None for e in rec.evaluations)
    assert [np.array_equal(a, b) for a, b in zip(pixels(off), pixels(on), strict=True)] == [True]
    infos = [m for m in ext_log.at(20) if "no negative conditioning" in m]
    assert len(infos) == 1 and not ext_log.at(40)


def test_forge_hires_pass_at_its_api_default_hr_cfg_1(start, ext_log):
    """Forge's API default hr_cfg is 1: the hires pass has no uncond, the first pass is delayed as usual."""
    _, rec = start("forge")
    negative = negative_row(rec)
    generate(rec, args=[True, 3], steps=8, enable_hr=True, hr_second_pass_steps=4, denoising_strength=0.6)
    first = [e for e in rec.evaluations if e.uncond is not None]
    assert len(first) == 8 and len(rec.evaluations) == 12
    assert rows_pattern(type("R", (), {"evaluations": first})(), negative) == ["E"] * 3 + ["N"] * 5
    assert not ext_log.at(40)


def test_classic_before_1_9_skips_step_0_so_delay_1_changes_nothing(start):
    images = {}
    for name in ("classic-1.8", "classic"):
        _, rec = start(name)
        images[name] = [pixels(generate(rec, args=[True, d], steps=6)) for d in (0, 1)]
    old, new = images["classic-1.8"], images["classic"]
    assert np.array_equal(old[0][0], old[1][0])  # documented quirk: delay 1 = off
    assert not np.array_equal(new[0][0], new[1][0])


def test_unsupported_architecture_in_forge_is_refused_with_one_line(start, ext_log):
    class Flux(FakeSD1Model):
        is_sd1 = False

    _, rec = start("forge", Flux())
    off = generate(rec, args=[False, 0], steps=6)
    on = generate(rec, args=[True, 3], steps=6)
    assert np.array_equal(pixels(off)[0], pixels(on)[0])
    errors = ext_log.at(40)
    assert len(errors) == 1 and "model type Flux is not supported" in errors[0] and "[Forge " in errors[0]


def test_reforge_dynamic_clip_skip_is_refused_with_one_line(start, ext_log, monkeypatch):
    from modules import processing

    _, rec = start("reforge")
    original = processing.StableDiffusionProcessing.setup_conds

    def setup_conds(self):
        original(self)
        self.dynamic_clip_skip_sets = {2: (self.c, self.uc), 1: (self.c, self.uc)}

    monkeypatch.setattr(processing.StableDiffusionProcessing, "setup_conds", setup_conds)
    off = generate(rec, args=[False, 0], steps=6)
    on = generate(rec, args=[True, 3], steps=6)
    assert np.array_equal(pixels(off)[0], pixels(on)[0])
    assert [m for m in ext_log.at(40) if "dynamic Clip skip" in m] == ext_log.at(40) != []


@pytest.mark.parametrize("name", ["forge", "classic"])
def test_sdxl_in_forks(start, name):
    _, rec = start(name, FakeSDXLModel())
    negative = negative_row(rec)
    generate(rec, args=[True, 2], steps=6, batch_size=2)
    assert rows_pattern(rec, negative) == ["EE", "EE"] + ["NN"] * 4
