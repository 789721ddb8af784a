"""Ingestion reads only the part of a scene under the region grid, and warps do not depend on
how the grid is divided into blocks.

A scene much bigger than the region has every tile away from the region's footprint
overwritten with garbage: reading any of them fails (checked), so a step that reads the whole
scene, or more than the window it needs, fails these tests.
"""

from __future__ import annotations

import math
import shutil
from pathlib import Path

import numpy as np
import pytest
import rasterio
import rasterio.warp
from affine import Affine
from rasterio.crs import CRS
from rasterio.errors import RasterioIOError

import glaciermap.core.reproject as rp
from glaciermap.core.grid import RegionGrid, write_raster
from glaciermap.core.reproject import block_windows, reproject_to_grid, warp_scale
from glaciermap.ingest.sar import (
    backscatter_stack,
    build_backscatter,
    build_coherence,
    coherence_stack,
)
from glaciermap.ingest.terrain import mosaic_to_grid

SIZE, TILE = 2048, 128  # scene pixels (0.0002 degrees, 41 x 45 km) and its tiles
SCENE_TRANSFORM = Affine(0.0002, 0, 73.6, 0, -0.0002, 36.3)


def _scene(path: Path, seed: int, offset: float) -> Path:
    """A smooth float32 EPSG:4326 scene with values offset +- 0.1, tiled and compressed."""
    rng = np.random.default_rng(seed)
    rows, cols = np.mgrid[0:SIZE, 0:SIZE].astype(np.float32)
    k = rng.uniform(1 / 300, 1 / 60, size=2)
    data = offset + 0.05 * (np.sin(rows * k[0]) + np.cos(cols * k[1]))
    with rasterio.open(
        path,
        "w",
        driver="GTiff",
        width=SIZE,
        height=SIZE,
        count=1,
        dtype="float32",
        crs="EPSG:4326",
        transform=SCENE_TRANSFORM,
        nodata=np.nan,
        tiled=True,
        blockxsize=TILE,
        blockysize=TILE,
        compress="deflate",
    ) as dst:
        dst.write(data.astype(np.float32), 1)
    return path


@pytest.fixture(scope="module")
def region() -> RegionGrid:
    """2 x 2 km (100 x 100 pixels at 20 m) in UTM 43N near the scene's centre."""
    (x,), (y,) = rasterio.warp.transform("EPSG:4326", "EPSG:32643", [73.8], [36.1])
    return RegionGrid.from_bounds("EPSG:32643", (x, y, x + 2000, y + 2000), 20)


def _corrupt_away_from(path: Path, grid: RegionGrid, margin: int = 8) -> Path:
    """A copy of ``path`` whose tiles not within ``margin`` pixels of ``grid``'s footprint
    hold garbage."""
    bad = path.with_name("far_tiles_corrupt_" + path.name)
    shutil.copy(path, bad)
    left, bottom, right, top = rasterio.warp.transform_bounds(
        grid.rio_crs, "EPSG:4326", *grid.bounds
    )
    c0, r0 = ~SCENE_TRANSFORM @ (left, top)
    c1, r1 = ~SCENE_TRANSFORM @ (right, bottom)
    keep_c = range(int((c0 - margin) // TILE), int((c1 + margin) // TILE) + 1)
    keep_r = range(int((r0 - margin) // TILE), int((r1 + margin) // TILE) + 1)
    spans = []
    with rasterio.open(path) as src:
        for i in range(SIZE // TILE):
            for j in range(SIZE // TILE):
                if i in keep_r and j in keep_c:
                    continue
                off = int(src.get_tag_item(f"BLOCK_OFFSET_{j}_{i}", "TIFF", bidx=1))
                n = int(src.get_tag_item(f"BLOCK_SIZE_{j}_{i}", "TIFF", bidx=1))
                spans.append((off, n))
    assert len(spans) > 0.9 * (SIZE // TILE) ** 2  # nearly all of the scene is unreadable
    with open(bad, "r+b") as f:
        for off, n in spans:
            f.seek(off)
            f.write(b"\xff" * n)
    with rasterio.open(bad) as src, pytest.raises(RasterioIOError):
        src.read(1)  # the whole scene cannot be read any more
    return bad


def test_region_warp_reads_only_its_window(tmp_path: Path, region: RegionGrid) -> None:
    clean = _scene(tmp_path / "scene.tif", 1, 0.2)
    bad = _corrupt_away_from(clean, region)
    expected = reproject_to_grid(clean, region)
    assert np.isfinite(expected).all()
    np.testing.assert_array_equal(reproject_to_grid(bad, region), expected)
    # The same values as from a small crop of the scene around the region.
    crop = tmp_path / "crop.tif"
    with rasterio.open(clean) as src:
        win = rasterio.windows.Window(700, 700, 700, 700)
        prof = src.profile | {
            "width": 700,
            "height": 700,
            "transform": src.transform @ Affine.translation(700, 700),
        }
        with rasterio.open(crop, "w", **prof) as dst:
            dst.write(src.read(1, window=win), 1)
    np.testing.assert_allclose(reproject_to_grid(crop, region), expected, rtol=1e-6)


@pytest.mark.parametrize("reducer", ["mean", "median"])
def test_sar_stacks_read_only_the_region(tmp_path: Path, region: RegionGrid, reducer: str) -> None:
    clean, bad = [], []
    for i, day in enumerate(("20210806", "20210818", "20210830")):
        for pol, offset in (("VV", 0.2), ("VH", 0.15)):
            path = _scene(tmp_path / f"S1A_IW_{day}T011520_{pol}.tif", 10 * i + len(pol), offset)
            clean.append(path)
            bad.append(_corrupt_away_from(path, region))
    data, names = backscatter_stack(clean, region, reducer=reducer)
    assert names == ["sar_copol_db", "sar_crosspol_db"] and np.isfinite(data).all()
    np.testing.assert_array_equal(backscatter_stack(bad, region, reducer=reducer)[0], data)
    # Written block by block (windows of 32 pixels, some partial): the same values, but for
    # GDAL's approximate coordinate transformation, interpolated over other row lengths.
    region.save(tmp_path / "grid.json")
    build_backscatter(bad, tmp_path / "grid.json", tmp_path / "bs.tif", reducer=reducer, block=32)
    with rasterio.open(tmp_path / "bs.tif") as out:
        np.testing.assert_allclose(out.read(), data, atol=1e-3)
        assert list(out.descriptions) == names and out.tags()["REDUCER"] == reducer

    pairs = []
    for a, b in (("20210806", "20210818"), ("20210818", "20210830")):
        coh = _scene(tmp_path / f"S1AA_{a}T0_{b}T0_VVP012_corr.tif", int(a[-2:]), 0.5)
        pairs.append(_corrupt_away_from(coh, region))
    coh_bad = coherence_stack(pairs, region, reducer=reducer)
    assert np.isfinite(coh_bad).all() and 0.3 < coh_bad.min() and coh_bad.max() < 0.7
    build_coherence(pairs, tmp_path / "grid.json", tmp_path / "coh.tif", reducer=reducer, block=48)
    with rasterio.open(tmp_path / "coh.tif") as out:
        np.testing.assert_allclose(out.read(1), coh_bad, atol=1e-4)


def test_out_of_range_coherence_written_block_by_block_leaves_no_file(
    tmp_path: Path, region: RegionGrid
) -> None:
    from glaciermap.core.errors import InputDataError

    bad = _scene(tmp_path / "x_20210806_20210818_corr.tif", 3, 3.0)
    region.save(tmp_path / "grid.json")
    with pytest.raises(InputDataError, match=r"outside 0\.\.1"):
        build_coherence([bad], tmp_path / "grid.json", tmp_path / "coh.tif", block=32)
    assert not (tmp_path / "coh.tif").exists()


def test_dem_mosaic_reads_only_the_region(tmp_path: Path, region: RegionGrid) -> None:
    dem = _scene(tmp_path / "dem.tif", 7, 4000.0)
    bad = _corrupt_away_from(dem, region)
    expected = mosaic_to_grid([dem], region)
    assert np.isfinite(expected).all()
    np.testing.assert_allclose(mosaic_to_grid([bad], region, block=40), expected, atol=1e-2)
    np.testing.assert_array_equal(mosaic_to_grid([bad], region), expected)


def test_cross_zone_warp_does_not_depend_on_the_blocks(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Across UTM zones GDAL's own resampling scale, estimated per chunk, widens the bilinear
    kernel by a chunk-dependent amount (7 DN here between 64-pixel blocks and one warp); the
    fixed scale leaves only the approximate transformer's hundredths of a pixel."""
    src_grid = RegionGrid.from_bounds("EPSG:32643", (400000, 4000000, 406000, 4006000), 10)
    rng = np.random.default_rng(0)
    noise = rng.uniform(1000, 1100, size=src_grid.shape).astype(np.float32)
    src = tmp_path / "noise.tif"
    write_raster(src, noise, src_grid, ["a"], nodata=np.nan)
    bounds = rasterio.warp.transform_bounds(
        "EPSG:32643", "EPSG:32644", 401000, 4001000, 405000, 4005000
    )
    grid = RegionGrid.from_bounds("EPSG:32644", bounds, 10)

    def worst_block_difference() -> float:
        whole = reproject_to_grid(src, grid)[0]
        return max(
            float(
                np.nanmax(np.abs(reproject_to_grid(src, grid, window=w)[0] - whole[w.toslices()]))
            )
            for w in block_windows(grid, 64)
        )

    assert worst_block_difference() < 0.5
    monkeypatch.setattr(rp, "warp_options", lambda src, grid: {})  # GDAL's per-chunk scale
    assert worst_block_difference() > 2


def test_warp_scale_from_resolutions() -> None:
    grid = RegionGrid.from_bounds("EPSG:32643", (400000, 4000000, 410000, 4010000), 10)
    utm43, utm44 = CRS.from_epsg(32643), CRS.from_epsg(32644)
    assert warp_scale(utm43, Affine(10, 0, 399000, 0, -10, 4011000), grid) == (1.0, 1.0)
    assert warp_scale(utm43, Affine(5, 0, 399000, 0, -5, 4011000), grid) == (0.5, 0.5)
    assert warp_scale(utm43, Affine(30, 0, 399000, 0, -30, 4011000), grid) == (3.0, 3.0)
    # Another zone: pixels rotated by 4 degrees, same resolution: still 1 (the bounding box
    # of a rotated pixel would give 1 / (cos + sin) = 0.93).
    xs, ys = warp_scale(utm44, Affine(10, 0, -150000, 0, -10, 4100000), grid) or (0, 0)
    assert xs == pytest.approx(1.0, abs=0.01) and ys == pytest.approx(1.0, abs=0.01)
    # Geographic pixels: 0.0002 degrees is 18 m east-west and 22 m north-south at 36 N.
    xs, ys = warp_scale(CRS.from_epsg(4326), SCENE_TRANSFORM, grid) or (0, 0)
    assert xs == pytest.approx(0.0002 * 111320 * math.cos(math.radians(36.1)) / 10, rel=0.01)
    assert ys == pytest.approx(0.0002 * 110950 / 10, rel=0.01)
    assert warp_scale(None, SCENE_TRANSFORM, grid) is None  # type: ignore[arg-type]


def test_block_percentile_is_numpys() -> None:
    import warnings

    from glaciermap.ingest.sar import _nanpercentile_sorting

    rng = np.random.default_rng(2)
    for dates in (1, 2, 3, 6):
        stack = rng.random((dates, 40, 50), dtype=np.float32)
        stack[rng.random(stack.shape) < 0.3] = np.nan
        for q in (50.0, 10.0, 90.0):
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN pixels
                expected = np.nanpercentile(stack, q, axis=0).astype(np.float32)
            np.testing.assert_array_equal(_nanpercentile_sorting(stack.copy(), q), expected)


def _utm_scene(path: Path, grid: RegionGrid, cols: int, value: float, seed: int) -> Path:
    """Noise on the grid's CRS and pixel size over its western ``cols`` columns (+ 5 px)."""
    rng = np.random.default_rng(seed)
    data = value * rng.uniform(0.5, 1.5, size=(grid.height + 10, cols + 5)).astype(np.float32)
    scene = RegionGrid(
        crs=grid.crs,
        transform=grid.transform @ Affine.translation(-5, -5),
        width=cols + 5,
        height=grid.height + 10,
    )
    write_raster(path, data, scene, ["sar"], nodata=np.nan)
    return path


@pytest.mark.parametrize("reducer", ["mean", "median"])
def test_sar_tiles_equal_the_whole_grid(tmp_path: Path, region: RegionGrid, reducer: str) -> None:
    """One job per processing tile (issue 11): backscatter and coherence tiles, gathered, equal
    the whole-grid layers (seams at odd places; scenes over the west 70 px of 100, so the
    east tiles have none and hold NaN); a region no file reaches is refused at the gather."""
    from rasterio.windows import Window

    from glaciermap.core.errors import InputDataError
    from glaciermap.core.raster import tile_grid
    from glaciermap.ingest.catalog import FootprintCache, reaches
    from glaciermap.ingest.sar import gather_sar_tiles

    region.save(tmp_path / "grid.json")
    bs = [
        _utm_scene(tmp_path / f"S1A_IW_{d}T011520_{p}.tif", region, 70, v, i)
        for i, (d, p, v) in enumerate(
            [("20210806", "VV", 0.2), ("20210818", "VV", 0.3), ("20210806", "VH", 0.05)]
        )
    ]
    coh = [_utm_scene(tmp_path / "S1AA_20210806T0_20210818T0_VVP012_corr.tif", region, 70, 0.4, 7)]
    cuts_r, cuts_c = [0, 37, region.height], [0, 1, 73, region.width]
    windows = [
        Window(cuts_c[j], cuts_r[i], cuts_c[j + 1] - cuts_c[j], cuts_r[i + 1] - cuts_r[i])
        for i in range(2)
        for j in range(3)
    ]
    region_wide = {  # what the workflow passes a tile job given only the files over it
        build_backscatter: {"layers": ["sar_copol_db", "sar_crosspol_db"]},
        build_coherence: {"tile_only": True},
    }
    for build, files in ((build_backscatter, bs), (build_coherence, coh)):
        whole = tmp_path / f"{build.__name__}.tif"
        build(files, tmp_path / "grid.json", whole, reducer=reducer, block=32)
        parts, own = [], []
        footprints = FootprintCache().lookup([str(f) for f in files])
        for k, win in enumerate(windows):
            dest = tmp_path / f"{build.__name__}_{k}.tif"
            build(files, tmp_path / "grid.json", dest, reducer=reducer, block=32, tile=win)
            parts.append((dest, win))
            # The workflow's tile job: only the files whose footprint reaches the tile
            # (the east tiles get none), with the region's layers.
            sub = tile_grid(region, win)
            here = [f for f, fp in zip(files, footprints, strict=True) if reaches(fp, sub)]
            assert here or win.col_off >= 73
            mine = tmp_path / f"{build.__name__}_own_{k}.tif"
            kw = region_wide[build]
            build(here, tmp_path / "grid.json", mine, reducer=reducer, block=32, tile=win, **kw)
            own.append((mine, win))
        gather_sar_tiles(tmp_path / "grid.json", own, tmp_path / "own.vrt", files)
        with rasterio.open(whole) as a, rasterio.open(tmp_path / "own.vrt") as b:
            np.testing.assert_array_equal(b.read(), a.read())
            assert b.descriptions == a.descriptions
        far_grid = RegionGrid.from_bounds(
            region.crs, (500000, 4000000, 500000 + 30 * 20, 4000000 + 30 * 20), 20
        )
        far = _utm_scene(
            tmp_path / f"far_{build.__name__}_20210806_VV_corr.tif", far_grid, 20, 0.3, 9
        )
        gather_sar_tiles(tmp_path / "grid.json", parts, tmp_path / "g.vrt", [*files, far])
        with rasterio.open(whole) as a, rasterio.open(tmp_path / "g.vrt") as b:
            np.testing.assert_array_equal(b.read(), a.read())
            assert b.descriptions == a.descriptions and b.tags()["REDUCER"] == reducer
            assert b.tags()["SKIPPED_FILES"] == far.name  # a shared folder's other scenes
            assert np.isnan(b.read(1)[:, 80:]).all() and np.isfinite(b.read(1)[:, :70]).all()
    # east tiles only: no file reaches them
    east = [(p, w) for p, w in parts if w.col_off >= 73]
    with pytest.raises(InputDataError, match="do not overlap the region grid"):
        gather_sar_tiles(tmp_path / "grid.json", east, tmp_path / "none.vrt", coh)
    assert not (tmp_path / "none.vrt").exists()


@pytest.mark.parametrize(
    ("crs", "turn_deg", "res", "expected"),
    [
        ("EPSG:32643", 0, 10, "average"),  # Sentinel-2 10 m onto a 30 m grid
        ("EPSG:32642", 0, 10, "average"),  # the next UTM zone: 3.5 degrees at 36 N
        ("EPSG:32643", 30, 10, "bilinear"),  # rotated: GDAL's average is wrong there
        ("EPSG:32643", 0, 20, "average"),
        ("EPSG:32643", 0, 30, "bilinear"),  # same resolution
        ("EPSG:32643", 0, 60, "bilinear"),  # upsampling
    ],
)
def test_continuous_resampling(crs: str, turn_deg: float, res: float, expected: str) -> None:
    from rasterio.io import MemoryFile

    grid = RegionGrid.from_bounds("EPSG:32643", (300000, 4000000, 303000, 4003000), 30)
    (x,), (y,) = rasterio.warp.transform(grid.crs, crs, [301500], [4001500])
    t = Affine.translation(x, y) * Affine.rotation(turn_deg) * Affine.scale(res, -res)
    with (
        MemoryFile() as mem,
        mem.open(
            driver="GTiff", width=8, height=8, count=1, dtype="float32", crs=crs, transform=t
        ) as src,
    ):
        assert rp.continuous_resampling(src, grid).name == expected
