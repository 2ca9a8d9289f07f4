"""Metrics (PSNR/SSIM/preservation, removal/reverse) and the demo command end to end on the toy model."""

from __future__ import annotations

import json
import math
import subprocess
import sys

import pytest
import torch
from conftest import ROOT

from toy import metrics


def _image(seed: int = 0, n: int | None = None) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    shape = (3, 32, 32) if n is None else (n, 3, 32, 32)
    # smooth-ish image: blurred noise in [0.2, 0.8]
    x = torch.rand(shape, generator=g)
    return 0.2 + 0.6 * torch.nn.functional.avg_pool2d(x.reshape(-1, 1, 32, 32), 3, 1, 1).reshape(shape)


def _noisy(x: torch.Tensor, std: float, seed: int = 1) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return (x + std * torch.randn(x.shape, generator=g)).clamp(0, 1)


# --- PSNR / SSIM ----------------------------------------------------------------------------------------------


def test_identical_images_give_inf_psnr_and_unit_ssim():
    a = _image()
    assert metrics.psnr(a, a.clone()) == math.inf
    assert metrics.ssim(a, a.clone()) == pytest.approx(1.0, abs=1e-12)
    batch = _image(n=3)
    assert torch.isinf(metrics.psnr(batch, batch)).all()
    assert torch.allclose(metrics.ssim(batch, batch), torch.ones(3, dtype=torch.float64))


def test_psnr_and_ssim_decrease_with_noise():
    a = _image()
    psnrs = [metrics.psnr(a, _noisy(a, s)) for s in (0.01, 0.05, 0.2)]
    ssims = [metrics.ssim(a, _noisy(a, s)) for s in (0.01, 0.05, 0.2)]
    assert psnrs[0] > psnrs[1] > psnrs[2] > 0
    assert 1.0 > ssims[0] > ssims[1] > ssims[2]
    # PSNR of a constant offset is exact: MSE = 0.1^2 -> 20 dB
    assert metrics.psnr(a, a + 0.1) == pytest.approx(20.0, abs=1e-4)


def test_masks_select_the_pixels_that_count():
    a = _image()
    b = a.clone()
    b[:, :, :16] = _noisy(a[:, :, :16], 0.3)  # left half changed
    right = torch.zeros(32, 32, dtype=torch.bool)
    right[:, 16:] = True  # the SSIM window does not reach across the mask
    assert metrics.psnr(a, b, right) == math.inf
    assert metrics.ssim(a, b, right) == pytest.approx(1.0, abs=1e-9)
    assert metrics.psnr(a, b, ~right) < 30 and metrics.ssim(a, b, ~right) < 0.9
    assert math.isnan(metrics.psnr(a, b, torch.zeros(32, 32, dtype=torch.bool)))
    # per-image masks in a batch
    batch_a, batch_b = torch.stack([a, a]), torch.stack([b, b])
    masks = torch.stack([right, ~right])
    p = metrics.psnr(batch_a, batch_b, masks)
    assert math.isinf(p[0]) and p[1] < 30


@pytest.mark.parametrize("accessory", ["hat", "glasses", "stripes"])
def test_preservation_ignores_the_accessory_area(accessory):
    from toy import world

    def image(*acc: str) -> torch.Tensor:
        return (world.render_scene(world.one_shape("circle", "red", "blue", 16.0, 20.0, 7.0, acc))[0] + 1) / 2

    with_it, without = image(accessory), image()
    assert not torch.equal(with_it, without)
    pres = metrics.preservation(with_it, without, accessory=accessory)  # only the accessory differs -> excluded
    assert pres["psnr"] == math.inf and pres["ssim"] == pytest.approx(1.0, abs=1e-9)
    whole = metrics.preservation(with_it, without, region=torch.zeros(32, 32, dtype=torch.bool))
    assert whole["psnr"] < 25 and whole["ssim"] < 0.97
    # another accessory's region does not cover this one's pixels
    other = "hat" if accessory != "hat" else "glasses"
    assert metrics.preservation(with_it, without, accessory=other)["psnr"] < 40


# --- removal / reverse activation -----------------------------------------------------------------------------


def test_removal_and_reverse_helpers():
    without = [True, True, True, False, False, False, False, True]
    with_ = [False, True, False, False, True, False, False, False]
    assert metrics.removal_success(without, with_).tolist() == [True, False, True, False, False, False, False, True]
    assert metrics.reverse_activation(without, with_).tolist() == [False] * 4 + [True, False, False, False]
    assert metrics.removal_rate(without, with_) == pytest.approx(3 / 4)
    assert metrics.reverse_rate(without, with_) == pytest.approx(1 / 4)
    assert math.isnan(metrics.removal_rate([False, False], [True, False]))
    assert math.isnan(metrics.reverse_rate([True], [True]))
    assert metrics.reverse_rate(torch.tensor([False, False]), torch.tensor([True, True])) == 1.0
    score = metrics.case_score([True, False, False], [0.9, 0.8, 1.0])
    assert score.tolist() == pytest.approx([0.0, 0.8, 1.0])


# --- the demo -------------------------------------------------------------------------------------------------


def _demo(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "toy.demo", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_demo_writes_grid_and_json(tmp_path):
    from PIL import Image

    from toy.demo import DEFAULT_NEGATIVE, DEFAULT_PROMPT, main, make_columns, render_grid

    # in-process (the stand-in is started afresh by main); the CLI path is covered by the exit-code test below
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny batches: one thread is as fast and does not fight other processes for cores
    try:
        assert main(["--seeds", "1,2", "--steps", "6", "--delays", "2", "--scale", "2", "--out", str(tmp_path)]) == 0
    finally:
        torch.set_num_threads(threads)
    doc = json.loads((tmp_path / "demo.json").read_text())
    assert [c["label"] for c in doc["columns"]] == ["no negative", "negative from step 0", "from step 2"]
    assert doc["config"]["seeds"] == [1, 2] and doc["config"]["steps"] == 6
    assert doc["columns"][0]["preservation_vs_no_negative"] is None
    for col in doc["columns"]:
        assert set(col["accessory_present"]) == {"1", "2"} and 0.0 <= col["accessory_rate"] <= 1.0
    delayed = doc["columns"][2]
    assert delayed["extension"] == {"enabled": True, "delay": 2} and "Negative delay: 2" in delayed["infotext"]
    assert doc["columns"][1]["extension"]["enabled"] is False
    assert "Negative delay" not in doc["columns"][1]["infotext"]
    for col in doc["columns"][1:]:
        pres = col["preservation_vs_no_negative"]
        assert 0 < pres["psnr_mean"] <= 100 and -1 <= pres["ssim_mean"] <= 1

    # the grid has the layout render_grid gives for 3 columns x 2 rows of 64 px tiles
    png = Image.open(tmp_path / "demo.png")
    cols = make_columns(DEFAULT_NEGATIVE, [2])
    for c in cols:
        c.images = torch.zeros(2, 3, 32, 32)
        c.present = [False, False]
        c.ssim = [] if c is cols[0] else [1.0, 1.0]
    title = f'"{DEFAULT_PROMPT}"   negative: "{DEFAULT_NEGATIVE}"   Euler, 6 steps, CFG 7'
    assert png.size == render_grid(cols, [1, 2], 2, title, DEFAULT_NEGATIVE).size
    assert png.size[0] >= 3 * 64 and png.size[1] >= 2 * 64


def test_demo_unknown_word_exits_2_with_vocabulary(tmp_path, capsys):
    res = _demo("--prompt", "red unicorn on blue background", "--out", str(tmp_path))
    assert res.returncode == 2
    assert "unicorn" in res.stderr and "circle" in res.stderr and "triangle" in res.stderr
    assert "Traceback" not in res.stderr

    from toy.demo import main

    assert main(["--negative", "circle", "--out", str(tmp_path)]) == 2  # a word of the vocabulary, not an accessory
    err = capsys.readouterr().err
    assert "circle" in err and "glasses" in err and "stripes" in err
    assert not (tmp_path / "demo.png").exists()


def test_seed_parsing_and_batching():
    from toy.demo import consecutive_runs, parse_int_list

    assert parse_int_list("1-6") == [1, 2, 3, 4, 5, 6]
    assert parse_int_list("1,2,3") == [1, 2, 3]
    assert parse_int_list("3-4,9") == [3, 4, 9]
    assert consecutive_runs([1, 2, 3, 7, 8, 5]) == [[1, 2, 3], [7, 8], [5]]
