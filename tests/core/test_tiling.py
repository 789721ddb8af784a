"""Processing tiles: the tile arithmetic, and per-tile features and predictions whose mosaic
(a VRT of the tiles, gathered into a COG) equals the whole-grid result: no seams."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import rasterio
import torch
from hypothesis import given
from hypothesis import strategies as st
from rasterio.windows import Window

from glaciermap.core.grid import RegionGrid, write_raster
from glaciermap.core.io import band_names, read_bands
from glaciermap.core.raster import gather_cog, tile_grid, write_vrt
from glaciermap.ingest.optical import COMMON_NAMES
from glaciermap.ml.features import VALID, build_feature_stack
from glaciermap.ml.models import build_cnn
from glaciermap.ml.predict import sliding_window_predict
from glaciermap.registry import processing_tile_px, processing_tiles


def test_tile_size_in_whole_blocks() -> None:
    assert processing_tile_px(10, 20) == 2048  # 20.48 km at 10 m
    assert processing_tile_px(30, 20) == 768  # 23 km at 30 m
    assert processing_tile_px(10, 0.1) == 256  # never below one block


@given(st.integers(1, 3000), st.integers(1, 3000), st.sampled_from([10.0, 20.0, 30.0]))
def test_tiles_partition_the_grid(h: int, w: int, res: float) -> None:
    tiles = processing_tiles((h, w), res, 5.0)
    cover = np.zeros((h, w), np.uint8)
    for r0, c0, th, tw in tiles.values():
        assert th > 0 and tw > 0
        cover[r0 : r0 + th, c0 : c0 + tw] += 1
    assert (cover == 1).all()
    t = processing_tile_px(res, 5.0)
    assert len(tiles) == -(-h // t) * -(-w // t)
    assert ("r0c0" in tiles) and (len(tiles) == 1) == (h <= t and w <= t)


def _mosaic(tmp_path: Path, grid: RegionGrid, tiles: dict, make) -> Path:  # type: ignore[no-untyped-def, type-arg]
    parts = []
    for tid, (r0, c0, h, w) in tiles.items():
        win = Window(c0, r0, w, h)
        dest = tmp_path / "tiles" / f"{tid}.tif"
        make(dest, win)
        parts.append((dest, win))
    vrt = tmp_path / "mosaic.vrt"
    write_vrt(vrt, grid, parts)
    return vrt


def test_tiled_features_and_prediction_equal_the_whole_grid(tmp_path: Path) -> None:
    # 300 x 270 px at 10 m in tiles of 256 px: four tiles of unequal size
    grid = RegionGrid.from_bounds("EPSG:32643", (400000, 4000000, 402700, 4003000), 10.0)
    grid.save(tmp_path / "g.json")
    opt = np.random.default_rng(7).uniform(0, 1, (6, *grid.shape)).astype(np.float32)
    opt[:, 240:270, 250:262] = np.nan  # nodata across a tile corner
    o = tmp_path / "opt.tif"
    write_raster(o, opt, grid, list(COMMON_NAMES), nodata=np.nan)
    tiles = processing_tiles(grid.shape, 10.0, 2.56)
    assert len(tiles) == 4

    whole = tmp_path / "whole.tif"
    build_feature_stack(tmp_path / "g.json", o, dest=whole, block=128)
    (tmp_path / "tiles").mkdir()
    vrt = _mosaic(
        tmp_path,
        grid,
        tiles,
        lambda dest, win: build_feature_stack(
            tmp_path / "g.json", o, dest=dest, block=128, tile=win
        ),
    )
    with rasterio.open(tmp_path / "tiles/r1c1.tif") as src:  # a tile sits on its part of the grid
        assert src.transform == tile_grid(grid, Window(256, 256, 14, 44)).transform
        assert src.shape == (44, 14)
    a, names = read_bands(whole)
    b, vrt_names = read_bands(vrt)
    assert vrt_names == names == band_names(whole)
    assert a.tobytes() == b.tobytes()  # bit for bit, texture across the seams included
    with rasterio.open(vrt) as v, rasterio.open(whole) as w:
        assert v.crs == w.crs and v.transform == w.transform and v.units == w.units

    # prediction: a tiny U-Net over the features, per tile (windows reaching across seams)
    model = tmp_path / "model"
    model.mkdir()
    torch.manual_seed(0)
    layers = names[:3]
    torch.save(build_cnn("unet", 3, base=4, depth=2).state_dict(), model / "weights.pt")
    (model / "norm.json").write_text(
        json.dumps({"layers": layers, "mean": [0.5] * 3, "std": [0.3] * 3})
    )
    (model / "config.json").write_text(
        json.dumps({"arch": "unet", "params": {"base_channels": 4, "depth": 2}})
    )
    ref = tmp_path / "p_whole.tif"
    sliding_window_predict(whole, model, ref, window=64, overlap=16, device="cpu")
    (tmp_path / "p").mkdir()
    pvrt = _mosaic(
        tmp_path / "p",
        grid,
        tiles,
        lambda dest, win: sliding_window_predict(
            vrt, model, dest, window=64, overlap=16, device="cpu", tile=win
        ),
    )
    cog = tmp_path / "p_gathered.tif"
    gather_cog(pvrt, cog)
    p_ref, _ = read_bands(ref)
    p_tiles, pnames = read_bands(cog)
    assert pnames == ["probability", "uncertainty"]
    assert np.array_equal(np.isnan(p_ref), np.isnan(p_tiles))
    ok = np.isfinite(p_ref)
    assert np.abs(p_ref[ok] - p_tiles[ok]).max() < 1e-5
    with rasterio.open(cog) as src:
        assert src.tags(ns="IMAGE_STRUCTURE").get("LAYOUT") == "COG"
    assert not np.isfinite(p_tiles[0][~np.isfinite(a[names.index(VALID)]) | (a[-1] == 0)]).any()

    # outlines (issue 11: "a region run as 4 tiles equals the same region as 1 tile"): the
    # same glaciers, areas within 0.1 %
    from glaciermap.products.outlines import polygonize_probability

    # (the untrained model's probability is nearly flat: threshold it at its median)
    kw = {"region": "toy", "year": 2021, "threshold": float(np.nanmedian(p_ref[0]))}
    kw |= {"smooth_m": 0.0, "min_area_km2": 0.001, "max_hole_km2": 0.001}  # 10 px
    one = polygonize_probability(ref, tmp_path / "one.gpkg", **kw)
    four = polygonize_probability(cog, tmp_path / "four.gpkg", **kw)
    assert one.glaciers > 3 and four.glaciers == one.glaciers
    assert abs(four.area_km2 - one.area_km2) <= 1e-3 * one.area_km2


def test_vrt_needs_tiles(tmp_path: Path) -> None:
    grid = RegionGrid.from_bounds("EPSG:32643", (0, 0, 100, 100), 10.0)
    with pytest.raises(ValueError, match="no tiles"):
        write_vrt(tmp_path / "x.vrt", grid, [])
    assert not (tmp_path / "x.vrt").exists()
