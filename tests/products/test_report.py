from __future__ import annotations

import json
import warnings
from pathlib import Path
from typing import Any

import matplotlib.image
import numpy as np
import pandas as pd
import pytest
import rasterio

from glaciermap.core.grid import RegionGrid, write_raster
from glaciermap.ml.features import VALID
from glaciermap.products.accuracy_table import PUBLISHED, benchmark_table, evaluate_on_split
from glaciermap.products.plots import false_colour, layer_map, training_curves


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


PNG = b"\x89PNG\r\n\x1a\n"


@pytest.fixture
def figures(monkeypatch: pytest.MonkeyPatch) -> dict[str, list[str]]:
    """Title and texts of each figure the plots module saves, by file name."""
    import glaciermap.products.plots as plots

    seen: dict[str, list[str]] = {}
    save = plots._save

    def spy(fig: Any, dest: Any) -> None:
        ax = fig.axes[0]
        seen[Path(dest).name] = [ax.get_title(), *(t.get_text() for t in ax.texts)]
        save(fig, dest)

    monkeypatch.setattr(plots, "_save", spy)
    return seen


def _optical(path: Path, grid: RegionGrid, bands: list[str]) -> Path:
    """A reflectance raster written with rasterio, band descriptions ``bands``."""
    data = np.random.default_rng(0).uniform(0, 0.8, (len(bands), *grid.shape))
    with rasterio.open(path, "w", **grid.profile(len(bands))) as dst:
        dst.write(data.astype(np.float32))
        for i, name in enumerate(bands, start=1):
            dst.set_band_description(i, name)
    return path


@pytest.mark.parametrize(
    ("bands", "composite"),
    [
        (["blue", "green", "red", "nir"], "colour infrared (NIR, red, green)"),
        (["blue", "green", "red", "nir", "swir1", "swir2"], "false colour (SWIR1, NIR, green)"),
        (["red", "green", "blue"], "natural colour (red, green, blue)"),
    ],
)
def test_false_colour_for_every_band_set(
    tmp_path: Path,
    grid: RegionGrid,
    figures: dict[str, list[str]],
    bands: list[str],
    composite: str,
) -> None:
    optical = _optical(tmp_path / "optical.tif", grid, bands)
    prob = np.zeros((1, *grid.shape), np.float32)
    prob[0, 5:35, 5:45] = 0.9
    write_raster(tmp_path / "p.tif", prob, grid, ["probability"], nodata=np.nan)
    from glaciermap.products.outlines import polygonize_probability

    polygonize_probability(tmp_path / "p.tif", tmp_path / "o.gpkg", "r", 2020)  # two layers
    with warnings.catch_warnings():
        warnings.filterwarnings("error", message="More than one layer")
        false_colour(optical, tmp_path / "fc.png", tmp_path / "o.gpkg", title="r 2020")
    assert (tmp_path / "fc.png").read_bytes()[:8] == PNG
    assert figures["fc.png"][0].startswith(f"r 2020: {composite}")


def test_absent_inputs_and_layers_give_placeholders(
    tmp_path: Path,
    grid: RegionGrid,
    write,
    figures: dict[str, list[str]],  # type: ignore[no-untyped-def]
) -> None:
    slope = write("slope.tif", np.ones((1, *grid.shape)), ["slope"])
    layer_map(slope, "elevation", tmp_path / "dem.png", missing="no DEM for r 2020")
    layer_map(None, "elevation", tmp_path / "none.png", missing="no DEM for r 2020")
    layer_map(tmp_path / "gone.tif", "slope", tmp_path / "gone.png")
    pan = _optical(tmp_path / "pan.tif", grid, ["pan"])
    false_colour(pan, tmp_path / "pan.png", title="r 2020")
    false_colour(None, tmp_path / "nooptical.png")
    layer_map(slope, "slope", tmp_path / "slope.png")
    for name in ("dem.png", "none.png", "gone.png", "pan.png", "nooptical.png", "slope.png"):
        assert (tmp_path / name).read_bytes()[:8] == PNG
    assert "no DEM for r 2020" in figures["dem.png"][1] and "'elevation'" in figures["dem.png"][1]
    assert figures["none.png"][1] == "no DEM for r 2020"
    assert figures["gone.png"][1] == "no slope layer for this region/year"
    assert "no bands for a colour composite" in figures["pan.png"][1]
    assert "no optical image" in figures["nooptical.png"][1]
    small = matplotlib.image.imread(tmp_path / "dem.png").shape
    full = matplotlib.image.imread(tmp_path / "slope.png").shape
    assert small[0] * small[1] < full[0] * full[1] / 2


@pytest.mark.parametrize("key", sorted(PUBLISHED))
def test_published_table_is_consistent(key: tuple[str, str]) -> None:
    _, p, r, f1, iou = PUBLISHED[key]
    assert f1 == pytest.approx(2 * p * r / (p + r), abs=0.002)
    assert iou == pytest.approx(f1 / (2 - f1), abs=0.002)


def test_region_metrics_split_clean_and_debris_ice_and_seeds(tmp_path: Path) -> None:
    """evaluate_probability counts block by block (any block size gives the same counts),
    scores each ensemble member, and with debris labels scores clean and debris-covered ice
    apart: tp_x / (tp_x + fn_x + fp)."""
    from glaciermap.products.metrics import count_confusion, evaluate_probability

    g = RegionGrid.from_bounds("EPSG:32643", (0, 0, 1000, 600), 10)  # 60 x 100 px
    lab = np.zeros(g.shape, np.uint8)
    lab[:, :50] = 1  # 3000 glacier px
    deb = np.zeros(g.shape, np.uint8)
    deb[:, 40:50] = 1  # the glacier's last 10 columns are debris-covered: 600 px
    prob = np.zeros((3, *g.shape), np.float32)
    prob[:, :, :40] = 0.9  # every clean-ice pixel found, the debris missed
    prob[:, :, 90:] = 0.9  # 600 false positives
    prob[2, :, :] = 0.1  # member 1 predicts nothing
    write_raster(
        tmp_path / "p.tif",
        prob,
        g,
        ["probability", "probability_member_0", "probability_member_1"],
        nodata=np.nan,
    )
    write_raster(tmp_path / "l.tif", lab, g, ["glacier"])
    write_raster(tmp_path / "d.tif", deb, g, ["debris"])
    write_raster(tmp_path / "f.tif", np.ones((1, *g.shape), np.float32), g, [VALID])
    args = (tmp_path / "p.tif", tmp_path / "l.tif", tmp_path / "f.tif")
    whole = count_confusion(*args, block=1024, debris=tmp_path / "d.tif")
    assert count_confusion(*args, block=16, debris=tmp_path / "d.tif") == whole
    m = evaluate_probability(*args, tmp_path / "m.json", debris=tmp_path / "d.tif")
    assert (m["tp"], m["fn"], m["fp"]) == (2400, 600, 600)
    assert m["iou_clean"] == pytest.approx(2400 / (2400 + 0 + 600))
    assert m["iou_debris"] == 0.0 and m["recall_debris"] == 0.0
    assert m["debris_fraction"] == pytest.approx(0.2)
    assert [s["tp"] for s in m["seeds"]] == [2400, 0]
    assert m["seed_miou_sd"] > 0
    plain = evaluate_probability(*args, tmp_path / "n.json")
    assert "iou_debris" not in plain and plain["iou"] == m["iou"]
