"""The analysis sheet (issue 28): opt-in, after the images, the same images, its markers, its extra evaluations."""

from __future__ import annotations

import logging

import pytest
import torch
from conftest import ROOT, TITLE

from lib_negative_delay import analysis
from lib_negative_delay.detector import threshold_for

KW = dict(
    prompt="red triangle on blue background",
    negative_prompt="glasses",
    steps=12,
    batch_size=2,
    seed=3,
    width=32,
    height=32,
    sampler_name="Euler",
    cfg_scale=7.0,
)


def args(analysis_flag, enabled=True, delay=3, auto=False, sensitivity=0.3, low=2, high=6):
    return {
        "alwayson_scripts": {TITLE: {"args": [enabled, delay, auto, sensitivity, low, high, "steps", analysis_flag]}}
    }


@pytest.fixture(scope="module")
def toy():
    from toy.model import ToyLDM

    return ToyLDM.load()


@pytest.fixture
def h(toy):
    import harness

    harness.start(str(ROOT), toy)
    rows = []
    hook = toy.model.register_forward_pre_hook(lambda m, a, k: rows.append(a[0].shape[0]), with_kwargs=True)
    harness.rows = rows
    yield harness
    hook.remove()


@pytest.fixture
def records(monkeypatch):
    """Every pass record the sheets are drawn from."""
    seen = []
    draw = analysis.render

    def keep(record, pictures, threshold, heading):
        seen.append((record, threshold, sorted(pictures)))
        return draw(record, pictures, threshold, heading)

    monkeypatch.setattr(analysis, "render", keep)
    return seen


def sheets(res) -> list:
    return [x for x in res.images if not torch.is_tensor(x)]


def images(res) -> list:
    return [x for x in res.images if torch.is_tensor(x)]


def switch_steps(info: str) -> list[int]:
    return [int(x) for x in info.split("Negative delay steps: ")[1].split(",")[0].split()]


def test_a_sheet_per_image_only_when_asked(h, ext_log):
    plain = h.txt2img(**KW, alwayson_scripts={TITLE: {"args": [True, 3]}})  # an API call that stops before it
    off = h.txt2img(**KW, **args(False))
    on = h.txt2img(**KW, **args(True))
    assert len(plain.images) == len(off.images) == 2 and not sheets(off)
    assert len(on.images) == 4 and len(sheets(on)) == 2 and on.images[2].mode == "RGB"
    assert all(torch.is_tensor(x) for x in on.images[:2])  # the sheets come after the images
    assert on.infotexts[:2] == off.infotexts and "analysis" not in on.infotexts[0].lower()
    assert len(on.infotexts) == len(on.images)  # one infotext per gallery item, so "Send to" stays aligned
    # a sheet's infotext pastes as its image's settings: "Send to" from the sheet restores the generation
    assert h.pasted_script_args(on.infotexts[3], TITLE) == h.pasted_script_args(on.infotexts[1], TITLE)
    assert on.infotexts[3].split("\n")[0] == on.infotexts[1].split("\n")[0]  # the prompt, not the sheet's text
    assert not ext_log.at(logging.WARNING)


@pytest.mark.parametrize(
    "panel",
    [dict(), dict(auto=True), dict(enabled=False), dict(delay=20)],
    ids=["fixed", "auto", "extension-off", "never"],
)
def test_the_images_are_those_of_the_analysis_off(h, panel):
    off = h.txt2img(**KW, **args(False, **panel))
    on = h.txt2img(**KW, **args(True, **panel))
    assert len(sheets(on)) == 2
    assert all(torch.equal(a, b) for a, b in zip(images(off), images(on), strict=True))
    assert on.infotexts[:2] == off.infotexts


def test_switch_marker_is_the_infotexts_step(h, records):
    fixed = h.txt2img(**KW, **args(True, delay=4))
    assert "Negative delay: 4" in fixed.infotexts[0]
    assert [r.switch_step() for r, _, _ in records] == [4, 4]
    # each sheet's infotext (the gallery's text, the API's infotexts) is its image's, with the switch step after it
    assert fixed.infotexts[2:] == [
        f'{fixed.infotexts[n - 1]}, Negative delay sheet: "image {n}: negative prompt from step 4"' for n in (1, 2)
    ]
    assert all(c.negative == (c.step >= 4) for r, _, _ in records for c in r.columns)
    records.clear()
    auto = h.txt2img(**KW, **args(True, auto=True, sensitivity=0.3, low=2, high=9))
    assert [r.switch_step() for r, _, _ in records] == switch_steps(auto.infotexts[0])
    assert {t for _, t, _ in records} == {threshold_for(0.3)}
    records.clear()
    h.txt2img(**KW, **args(True, enabled=False))  # the WebUI's negative from step 0
    assert [r.switch_step() for r, _, _ in records] == [0, 0]


def test_marks_and_columns(h, records):
    h.txt2img(**{**KW, "steps": 20, "batch_size": 1}, **args(True, delay=5))
    ((record, _, shown),) = records
    assert [c.step for c in record.columns] == list(range(20))  # every step, once
    assert record.marks == {"10%": 2, "20%": 4, "30%": 6}  # ceil(p * 20 / 100), as the % unit resolves them
    assert len(shown) == analysis.MAX_COLUMNS and 5 in shown and shown[0] == 0 and shown[-1] == 19
    assert all(
        -1.0 <= c.cosine <= 1.0 and c.change.shape == (32, 32) for c in record.columns
    )  # the toy latent is the image


@pytest.mark.parametrize("sampler,per_step", [("Euler", 1), ("Heun", 2)])
def test_one_extra_evaluation_per_image_and_step(h, sampler, per_step):
    kw = {**KW, "sampler_name": sampler, "steps": 6}
    h.rows.clear()
    h.txt2img(**kw, **args(False))
    plain = list(h.rows)
    h.rows.clear()
    h.txt2img(**kw, **args(True))
    # Heun evaluates twice per step (not at the last step); the sheet once per step, both images in one call
    assert sum(h.rows) - sum(plain) == 6 * 2 and h.rows.count(2) == 6
    assert len(plain) == 6 * per_step - (per_step - 1)


def test_auto_modes_measurement_serves_the_sheet(h):
    """At a step auto mode measures, the negative's output it already has is used: no second evaluation of it."""
    h.rows.clear()
    res = h.txt2img(**KW, **args(False, auto=True, sensitivity=1.0, low=2, high=6))
    assert switch_steps(res.infotexts[0]) == [2, 2]
    auto_rows = sum(h.rows)
    h.rows.clear()
    h.txt2img(**KW, **args(True, auto=True, sensitivity=1.0, low=2, high=6))
    assert sum(h.rows) - auto_rows == 12 * 2 - 2  # every step and image but the two measured at step 2


def test_img2img_and_hires_show_their_own_pass(h, records):
    init = torch.full((3, 32, 32), 0.5)
    res = h.img2img([init], **{**KW, "steps": 10, "batch_size": 1}, denoising_strength=0.6, **args(True, delay=5))
    assert len(sheets(res)) == 1
    ((record, _, _),) = records
    # strength 0.6 of 10 steps: the img2img pass starts at the level of step 3 of 10 and takes 7 steps
    assert record.title.startswith("img2img, 7 steps") and len(record.columns) == 7
    assert [c.reference_step for c in record.columns] == [3, 4, 5, 6, 7, 8, 9]
    # the delay of 5 of 10 is a noise level: the first img2img step at or below it; the marks likewise
    assert record.switch_step() == 2 and record.marks == {"10%": 0, "20%": 0, "30%": 0}
    records.clear()
    hires = dict(enable_hr=True, hr_scale=2, hr_second_pass_steps=4, denoising_strength=0.5, hr_upscaler="Latent")
    res = h.txt2img(**{**KW, "steps": 8, "batch_size": 1}, **hires, **args(True, delay=3))
    first, second = (r for r, _, _ in records)
    assert first.title == "txt2img, 8 steps" and second.title == "hires pass, 4 steps"
    assert res.infotexts[-1].endswith(
        f'Negative delay sheet: "image 1: negative prompt from step 3; hires pass: from step {second.switch_step()}"'
    )
    assert len(second.columns) == 4 and all(c.change.shape == (64, 64) for c in second.columns)
    assert len(sheets(res)) == 1 and sheets(res)[0].height > 400  # both passes, one under the other


def test_batch_count_gives_every_image_a_sheet(h, records):
    res = h.txt2img(**KW, n_iter=2, **args(True))
    assert len(images(res)) == 4 and len(sheets(res)) == 4 and len(records) == 4


@pytest.mark.parametrize("value", ["maybe", 7, [1]])
def test_a_bad_value_degrades_to_off_with_one_line(h, ext_log, value):
    off = h.txt2img(**KW, **args(False))
    res = h.txt2img(**KW, **args(value))
    res = h.txt2img(**KW, **args(value))  # twice: still one line per generation, not per step
    assert not sheets(res) and all(torch.equal(a, b) for a, b in zip(images(off), images(res), strict=True))
    lines = [m for m in ext_log.at(logging.WARNING) if "analysis" in m]
    assert 1 <= len(lines) <= 2 and "not true/false" in lines[0]


def test_text_values_of_the_api_are_read(h):
    assert len(sheets(h.txt2img(**KW, **args("true")))) == 2
    assert not sheets(h.txt2img(**KW, **args("false")))


def test_no_sheet_when_a_script_runs_the_generation(h, ext_log):
    from modules import scripts

    index = next(i for i, s in enumerate(scripts.scripts_txt2img.selectable_scripts) if "x/y/z" in s.title().lower())

    def make_p():
        p = h.build_p("txt2img", **KW, **args(True))
        p.script_args = (index + 1, *p.script_args[1:])
        return p

    run = h.run_xyz("[Negative Delay] Delay", "2, 4", make_p=make_p)
    assert all(not sheets(cell.processed) for cell in run.cells)
    assert any("no analysis sheet while a script" in m for m in ext_log.at(logging.INFO))


FORKS = ["forge", "neo", "classic", "reforge"]


@pytest.fixture
def fork(toy):
    """fork(name) -> harness: the stand-in as the fork ``name`` (toy model, UNet rows in ``harness.rows``)."""
    import fork_flavour
    import harness

    rows = []
    hook = toy.model.register_forward_pre_hook(lambda m, a, k: rows.append(a[0].shape[0]), with_kwargs=True)
    harness.rows = rows

    def run(name: str):
        harness.start(str(ROOT), toy, host=name)
        return harness

    yield run
    hook.remove()
    fork_flavour.select("a1111")


@pytest.mark.parametrize("name", FORKS)
@pytest.mark.parametrize(
    "panel",
    [dict(), dict(auto=True, sensitivity=0.3, low=2, high=9), dict(enabled=False)],
    ids=["fixed", "auto", "off"],
)
def test_a_fork_records_the_sheet_automatic1111_records(fork, records, ext_log, name, panel):
    """From the fork's post-CFG hook (x0 predictions, the batch's rows) the same columns as from A1111's denoiser
    (model outputs, the uncond rows): steps, switch, cosines, heat maps and predicted pictures; the same images."""
    a1111 = fork("a1111").txt2img(**KW, **args(True, **panel))
    ours = [r for r, _, _ in records]
    records.clear()
    h = fork(name)
    off = h.txt2img(**KW, **args(False, **panel))
    on = h.txt2img(**KW, **args(True, **panel))
    theirs = [r for r, _, _ in records]
    assert len(sheets(on)) == 2 and all(torch.equal(a, b) for a, b in zip(images(off), images(on), strict=True))
    assert on.infotexts[:2] == off.infotexts and on.infotexts[2:] == a1111.infotexts[2:]  # the same switch steps
    assert len(theirs) == 2
    for mine, fork_record in zip(ours, theirs, strict=True):
        assert [(c.step, c.negative) for c in fork_record.columns] == [(c.step, c.negative) for c in mine.columns]
        assert fork_record.marks == mine.marks and len(mine.columns) == 12
        # step 0 from the same input, exactly; then the two hosts' float rounding moves the trajectories apart a little
        first, fork_first = mine.columns[0], fork_record.columns[0]
        assert first.cosine == fork_first.cosine and torch.equal(first.change, fork_first.change)
        assert torch.equal(first.x0, fork_first.x0)
        for c, d in zip(mine.columns, fork_record.columns, strict=True):
            assert abs(c.cosine - d.cosine) < 0.01 and (c.change - d.change).abs().max() < 0.02 * c.change.max()
            assert (c.x0 - d.x0).abs().max() < 0.01 * c.x0.abs().max()
    assert not ext_log.at(logging.WARNING) and not ext_log.at(logging.ERROR)


@pytest.mark.parametrize("name", ["forge", "reforge"])  # a Forge 2 and a Forge 1 host: their own evaluation calls
def test_a_fork_evaluates_once_more_per_image_and_step(fork, name):
    """Fixed delay: one extra call of the batch's rows per step. Auto (batch 1): where its measurement evaluated the
    negative the sheet takes it, so every step costs one row more than the fixed delay, never two."""
    h = fork(name)
    kw = {**KW, "steps": 8}
    runs = {}
    for key, panel, batch in [
        ("plain", dict(), 2),
        ("sheet", dict(), 2),
        ("fixed-1", dict(), 1),
        ("auto", dict(auto=True, low=1, high=6), 1),
        ("auto-sheet", dict(auto=True, low=1, high=6), 1),
    ]:
        h.rows.clear()
        h.txt2img(**{**kw, "batch_size": batch}, **args(key.endswith("sheet"), **panel))
        runs[key] = list(h.rows)
    assert sum(runs["sheet"]) - sum(runs["plain"]) == 8 * 2 and runs["sheet"].count(2) == 8
    assert sum(runs["auto"]) > sum(runs["fixed-1"])  # it measured some steps
    assert sum(runs["auto-sheet"]) - sum(runs["fixed-1"]) == 8


def test_a_fork_without_an_uncond_gives_no_sheet_with_one_line(fork, ext_log):
    """CFG scale 1: the fork evaluates no negative branch, so there is nothing to show."""
    res = fork("forge").txt2img(**{**KW, "cfg_scale": 1.0}, **args(True))
    assert not sheets(res) and len(images(res)) == 2
    assert [m for m in ext_log.at(logging.INFO) if "no analysis sheet: no step" in m]


@pytest.mark.parametrize("name", ["forge", "reforge"])
def test_a_forks_hires_pass_is_its_second_section(fork, records, name):
    hires = dict(enable_hr=True, hr_scale=2, hr_second_pass_steps=4, denoising_strength=0.5, hr_upscaler="Latent")
    kw = {**KW, "steps": 8, "batch_size": 1, **hires, "hr_cfg": 7.0}
    h = fork(name)
    off = h.txt2img(**kw, **args(False, delay=3))
    on = h.txt2img(**kw, **args(True, delay=3))
    assert torch.equal(images(off)[0], images(on)[0]) and len(sheets(on)) == 1
    first, second = (r for r, _, _ in records)
    assert second.title == "hires pass, 4 steps" and len(second.columns) == 4 and first.switch_step() == 3


@pytest.mark.parametrize("name", FORKS)
def test_sdxl_and_inpainting_in_a_fork(records, name):
    """SDXL's dict conditioning through the fork's condition lists; an inpainting pass, whose predicted pictures are
    the guided result after the fork's mask blend (the init image where the mask keeps it)."""
    import fork_flavour
    import harness
    from fake_models import FakeSDXLModel

    kw = dict(prompt="a cat", negative_prompt="glasses", steps=6, batch_size=2, width=64, height=64)
    init = torch.full((3, 64, 64), 0.5)
    mask = torch.zeros(64, 64)
    mask[:, :32] = 1.0  # repaint the left half
    try:
        harness.start(str(ROOT), FakeSDXLModel(), host=name)
        off = harness.txt2img(**kw, **args(False))
        on = harness.txt2img(**kw, **args(True))
        assert len(sheets(on)) == 2 and len(records) == 2
        assert all(torch.equal(a, b) for a, b in zip(images(off), images(on), strict=True))
        records.clear()
        inpaint = dict(denoising_strength=0.75, mask=mask, inpainting_fill=1, inpaint_full_res=False)
        off = harness.img2img([init], **{**kw, "batch_size": 1}, **inpaint, **args(False))
        on = harness.img2img([init], **{**kw, "batch_size": 1}, **inpaint, **args(True))
    finally:
        fork_flavour.select("a1111")
    assert torch.equal(images(off)[0], images(on)[0]) and len(sheets(on)) == 1
    ((record, _, _),) = records
    assert record.title.startswith("img2img") and record.switch_step() is not None
    kept = [c.x0[:, :, 5:] for c in record.columns]  # the right half (latent columns 5-7; 4 is blurred)
    assert all(torch.equal(x, kept[0]) for x in kept)  # is the init latent at every step: after the blend
    assert not torch.equal(record.columns[0].x0[:, :, :3], record.columns[-1].x0[:, :, :3])  # the left half is drawn


def test_a_model_auto_detect_does_not_run_on_gets_no_sheet_with_one_line(ext_log):
    """Flux Kontext in Forge Neo: auto-detect was never checked there, so neither is the sheet."""
    import fork_flavour
    import harness
    from fake_neo_models import Flux, neo_dynamic_args

    try:
        harness.start(str(ROOT), Flux(), host="neo")
        neo_dynamic_args()["kontext"] = True
        res = harness.txt2img(prompt="a cat", negative_prompt="glasses", steps=4, **args(True, delay=2))
    finally:
        neo_dynamic_args().pop("kontext", None)
        fork_flavour.select("a1111")
    assert not sheets(res)
    assert [m for m in ext_log.at(logging.WARNING) if "analysis sheet is not available for Flux Kontext" in m]


def test_saved_only_when_settings_say_so(h, tmp_path, monkeypatch):
    from modules import shared

    from lib_negative_delay.webui import options

    saved = []
    monkeypatch.setattr("modules.images.save_image", lambda image, path, basename, **kw: saved.append((path, kw)))
    for grid_save, ours, expected in [(True, False, 0), (False, True, 0), (True, True, 2)]:
        saved.clear()
        shared.opts.grid_save = grid_save
        setattr(shared.opts, options.SAVE_SHEETS_KEY, ours)
        p = h.build_p("txt2img", **KW, **args(True))
        p.outpath_grids = str(tmp_path)
        h.run_p(p)
        assert len(saved) == expected
    assert all(path == str(tmp_path) and kw["grid"] for path, kw in saved)


def test_steps_without_an_uncond_get_no_column(h, records):
    """Skip Early CFG: the WebUI evaluates no negative branch in the first steps; the sheet leaves them out."""
    from modules import shared

    shared.opts.skip_early_cond = 0.25
    try:
        h.rows.clear()
        h.txt2img(**{**KW, "steps": 8, "batch_size": 1}, **args(True, delay=3))
    finally:
        shared.opts.skip_early_cond = 0.0
    ((record, _, _),) = records
    assert [c.step for c in record.columns] == [3, 4, 5, 6, 7]


def test_sdxl_sheet_and_the_same_images(sdxl):
    """SDXL's dict conditioning: the extra evaluation gets the WebUI's empty negative (zeros) or the negative."""
    h, model, _ = sdxl
    kw = dict(prompt="a cat", negative_prompt="glasses", steps=6, batch_size=2)
    off = h.txt2img(**kw, **args(False))
    on = h.txt2img(**kw, **args(True))
    assert len(sheets(on)) == 2
    assert all(torch.equal(a, b) for a, b in zip(images(off), images(on), strict=True))


def test_flow_model_sheet(records):
    """The rectified-flow sibling (its checkpoint's own denoiser): x0 = x - sigma * v, the same images."""
    import harness

    from toy.model import FLOW_WEIGHTS_DIR, ToyLDM

    harness.start(str(ROOT), ToyLDM.load(FLOW_WEIGHTS_DIR))
    kw = {**KW, "steps": 8, "batch_size": 1, "cfg_scale": 5.0}
    off = harness.txt2img(**kw, **args(False))
    on = harness.txt2img(**kw, **args(True))
    assert torch.equal(images(off)[0], images(on)[0]) and len(sheets(on)) == 1
    ((record, _, _),) = records
    assert record.switch_step() == 3 and len(record.columns) == 8


def test_the_refiner_taking_over_mid_pass_gets_its_own_empty_prompt(sdxl, ext_log, records):
    """SDXL base -> SDXL refiner (another architecture) in the middle of the pass: the sheet's extra evaluation
    encodes the empty prompt again for the refiner; every step gets its column, the images stay the same."""
    from fake_models import FakeSDXLRefinerModel
    from modules import sd_models

    h, _, _ = sdxl
    sd_models.register_checkpoint(FakeSDXLRefinerModel(name="fake-sdxl-refiner"))
    refiner = {"Refiner": {"args": [True, "fake-sdxl-refiner.safetensors", 0.5]}}
    kw = dict(prompt="a cat", negative_prompt="glasses", steps=8)
    off = h.txt2img(**kw, alwayson_scripts={TITLE: {"args": [True, 2, False, 0.3, 4, 7, "steps", False]}, **refiner})
    on = h.txt2img(**kw, alwayson_scripts={TITLE: {"args": [True, 2, False, 0.3, 4, 7, "steps", True]}, **refiner})
    assert torch.equal(images(off)[0], images(on)[0]) and len(sheets(on)) == 1
    ((record, _, _),) = records
    assert [c.step for c in record.columns] == list(range(8)) and record.switch_step() == 2
    assert not ext_log.at(logging.ERROR)


def test_video_latents_get_no_sheet_with_one_line(ext_log):
    """A fork's post-CFG hook handing 5-D latents (a video: Wan's frames) stops the sheet with one warning."""
    from lib_negative_delay.settings import OnceLog
    from lib_negative_delay.webui import sheet

    state = sheet.SheetState(threshold=0.5, log=OnceLog(), fork=True)
    state.current = [analysis.PassRecord(title="txt2img, 4 steps", steps=4)]
    video = torch.zeros(1, 16, 3, 8, 8)  # batch, channels, frames, height, width
    args_5d = {"cond_denoised": video, "uncond_denoised": video}
    for _ in range(2):  # a second evaluation adds nothing, not even a line
        sheet._PENDING.append(sheet._Pending(state, None, torch.zeros(1, 4, 8), [False], step=0, level=1.0))
        sheet.after_post_cfg(args_5d, None, [], evaluate=lambda cond: pytest.fail("evaluated"))
        sheet._PENDING.clear()
    assert state.failed and not state.current[0].columns
    assert [m for m in ext_log.at(logging.WARNING) if "no analysis sheet for video latents (5 dimensions)" in m]
    assert len(ext_log.at(logging.WARNING)) == 1
