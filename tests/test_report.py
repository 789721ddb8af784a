from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from glaciermap.benchmark import PUBLISHED, benchmark_table, evaluate_on_split
from glaciermap.features import VALID
from glaciermap.grid import RegionGrid, write_raster
from glaciermap.plots import layer_map, training_curves


def test_evaluate_on_split_counts_only_test_chips(tmp_path: Path) -> None:
    g = RegionGrid.from_bounds("EPSG:32643", (0, 0, 400, 200), 10)  # 20 x 40 px: two 20 px chips
    prob = np.zeros((1, *g.shape), np.float32)
    prob[0, :, :20] = 0.9  # left chip predicted glacier
    lab = np.zeros(g.shape, np.uint8)
    lab[:, :20] = 1
    lab[:, 20:] = 1  # right chip is glacier too, but it is a train chip: not counted
    write_raster(tmp_path / "p.tif", prob, g, ["probability"], nodata=np.nan)
    write_raster(tmp_path / "l.tif", lab, g, ["glacier"])
    write_raster(tmp_path / "f.tif", np.ones((1, *g.shape), np.float32), g, [VALID])
    pd.DataFrame(
        [
            {
                "split": "test",
                "region": "r",
                "year": 2020,
                "row": 0,
                "col": 0,
                "left": 0,
                "right": 200,
            },
            {
                "split": "train",
                "region": "r",
                "year": 2020,
                "row": 0,
                "col": 1,
                "left": 200,
                "right": 400,
            },
        ]
    ).to_csv(tmp_path / "index.csv", index=False)
    m = evaluate_on_split(
        tmp_path / "index.csv",
        {"r_2020": (tmp_path / "p.tif", tmp_path / "l.tif", tmp_path / "f.tif")},
        tmp_path / "m.json",
    )
    assert (m["tp"], m["fp"], m["fn"], m["tn"]) == (400, 0, 0, 0)
    assert json.loads((tmp_path / "m.json").read_text())["iou"] == 1.0


def test_benchmark_table_beside_published(tmp_path: Path) -> None:
    res = {}
    for arch, fs in [("rf", "optical"), ("unet", "optical_dem_sar")]:
        p = tmp_path / f"{arch}_{fs}.json"
        p.write_text(
            json.dumps({"accuracy": 0.9, "precision": 0.8, "recall": 0.7, "f1": 0.75, "iou": 0.6})
        )
        res[(arch, fs)] = p
    df = benchmark_table(res, tmp_path / "t.md", tmp_path / "t.csv", "test")
    md = (tmp_path / "t.md").read_text()
    assert "| RF | Optical | .900 (.986) |" in md
    assert "| U-Net | Opt+DEM+SAR |" in md and ".600 (.873)" in md
    assert df.loc[1, "IoU (published)"] == PUBLISHED[("unet", "optical_dem_sar")][4]
    assert len(pd.read_csv(tmp_path / "t.csv")) == 2


def test_plots_write_pngs(tmp_path: Path, grid: RegionGrid, write) -> None:  # type: ignore[no-untyped-def]
    r = write("s.tif", np.random.default_rng(0).random((1, *grid.shape)), ["slope"])
    layer_map(r, "slope", tmp_path / "s.png")
    layer_map(None, "sar_copol_coherence", tmp_path / "c.png")
    pd.DataFrame({"epoch": [0, 1], "train_loss": [1.0, 0.5], "val_iou": [0.3, 0.6]}).to_csv(
        tmp_path / "h.csv", index=False
    )
    training_curves(tmp_path / "h.csv", tmp_path / "h.png")
    for name in ("s.png", "c.png", "h.png"):
        assert (tmp_path / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.parametrize("key", sorted(PUBLISHED))
def test_published_table_is_consistent(key: tuple[str, str]) -> None:
    _, p, r, f1, iou = PUBLISHED[key]
    assert f1 == pytest.approx(2 * p * r / (p + r), abs=0.002)
    assert iou == pytest.approx(f1 / (2 - f1), abs=0.002)
