"""toy/xyz_grid.py: the README's X/Y/Z plot over the delay comes from the stand-in's X/Y/Z plot script with the real
extension, lays out rows x columns as the WebUI's grid does, and its 0 % column is the extension switched off."""

from __future__ import annotations

import re

import numpy as np
import pytest
import torch
from conftest import TITLE

from toy.demo import DEFAULT_NEGATIVE, DEFAULT_PROMPT

X_VALUES = "0%, 20%, 50%"
SEEDS = [2, 5]
STEPS = 10


@pytest.fixture(scope="module")
def plot():
    """One small plot (3 shares x 2 seeds, 10 steps) and, right after it on the same stand-in, the extension-off
    images of the same seeds."""
    import harness

    from toy.xyz_grid import run_plot

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        run, grid = run_plot(X_VALUES, SEEDS, steps=STEPS)
        with torch.inference_mode():
            off = [
                harness.txt2img(
                    prompt=DEFAULT_PROMPT,
                    negative_prompt=DEFAULT_NEGATIVE,
                    steps=STEPS,
                    sampler_name="Euler",
                    cfg_scale=7.0,
                    seed=seed,
                    width=32,
                    height=32,
                    alwayson_scripts={TITLE: {"args": [False, 0]}},
                )
                for seed in SEEDS
            ]
    finally:
        torch.set_num_threads(threads)
    return run, grid, off


def test_cells_come_from_the_xyz_script(plot):
    run, grid, _ = plot
    assert len(run.cells) == len(SEEDS) * 3
    header = run.grid_infotext[1]
    assert "Script: X/Y/Z plot" in header
    assert "X Type: [Negative Delay] Delay (% of steps)" in header and "Y Type: Seed" in header
    assert grid.x_labels == [f"[Negative Delay] Delay (% of steps): {v}" for v in ("0%", "20%", "50%")]
    assert grid.y_labels == ["Seed: 2", "Seed: 5"] and grid.seeds == SEEDS
    for r, seed in enumerate(SEEDS):
        for c, share in enumerate(("0%", "20%", "50%")):
            info = grid.infotexts[r][c]
            assert re.search(r"Negative delay: ([\d.]+%)", info).group(1) == share
            assert f"Seed: {seed}," in info and f"Steps: {STEPS}," in info and "Size: 32x32" in info


def test_zero_percent_column_is_the_extension_off_bit_for_bit(plot):
    _, grid, off = plot
    for r, res in enumerate(off):
        assert "Negative delay" not in res.infotexts[0]
        assert torch.equal(torch.as_tensor(grid.images[r][0]), torch.as_tensor(res.images[0]))
    # the delay does act: some later column differs from the extension off
    assert any(not torch.equal(torch.as_tensor(grid.images[r][2]), torch.as_tensor(off[r].images[0])) for r in (0, 1))


def test_picture_is_rows_by_columns_of_upscaled_cells_with_headers(plot):
    from toy.xyz_grid import render, tile

    _, grid, _ = plot
    scale, margin = 2, 4
    picture = render(grid, scale=scale, margin=margin)
    cell = 32 * scale
    pad_left = cell * 3 // 4
    width, height = picture.size
    assert width == pad_left + 3 * cell + 2 * margin
    pad_top = height - (2 * cell + margin)
    assert 0 < pad_top < cell  # a header strip above the cells, as tall as the wrapped headers need
    pixels = np.asarray(picture)
    for r in range(2):
        for c in range(3):
            x, y = pad_left + c * (cell + margin), pad_top + r * (cell + margin)
            assert np.array_equal(pixels[y : y + cell, x : x + cell], np.asarray(tile(grid.images[r][c], scale)))
    assert (pixels[:pad_top, pad_left:] < 128).any(), "column headers drawn"
    assert (pixels[pad_top:, :pad_left] < 128).any(), "row headers drawn"
    # more rows and columns make a bigger picture by whole cells
    wider = type(grid)(grid.x_labels * 2, grid.y_labels, [row * 2 for row in grid.images], grid.infotexts, SEEDS)
    assert render(wider, scale=scale, margin=margin).size == (width + 3 * (cell + margin), height)


def test_command_writes_the_png_and_prints_the_summary(tmp_path, capsys):
    from PIL import Image

    from toy.xyz_grid import main

    out = tmp_path / "grid.png"
    threads = torch.get_num_threads()
    try:
        assert main(["--x-values", "0%, 50%", "--seeds", "2", "--steps", "6", "--scale", "1", "--out", str(out)]) == 0
    finally:
        torch.set_num_threads(threads)
    printed = capsys.readouterr().out
    assert f"wrote {out}" in printed
    assert re.search(r"Delay \(% of steps\): 0%\s+[01]/1", printed)
    assert re.search(r"Delay \(% of steps\): 50%\s+[01]/1", printed)
    assert Image.open(out).size[0] >= 32 * 3 // 4 + 2 * 32

    assert main(["--x-values", "0%, 120%", "--out", str(tmp_path / "bad.png")]) == 2
    assert "not a share of the sampling steps" in capsys.readouterr().err
    assert not (tmp_path / "bad.png").exists()
