"""The optical composite by processing tiles (one job per tile on a cluster): the mosaic of the
tiles equals the whole-grid composite; a tile no scene covers holds NaN; the region's clear
coverage is checked when the tiles are gathered."""

from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np
import pytest
import rasterio
import rasterio.warp
from rasterio.windows import Window

from glaciermap.core.errors import InputDataError
from glaciermap.core.grid import RegionGrid
from glaciermap.ingest.optical import build_optical_composite, gather_optical_tiles

# 10 m, the Sentinel-2 grid: the 10 m bands map 1:1 and the 20 m ones are upsampled. On a
# 30 m grid every band is downsampled by the area average (a bilinear kernel GDAL would size per
# warped chunk, so tiles differed at their edges).
GRID = RegionGrid.from_bounds("EPSG:32643", (400000, 4002500, 403000, 4005000), 10.0)


def _scene(
    folder: Path, sensing: str, x0: float, width_px: int, seed: int, crs: str = "EPSG:32643"
) -> list[Path]:
    """A Sentinel-2 L2A scene at 10/20 m covering ``x0 .. x0 + width_px * 10`` of UTM 43N
    (noise, so resampling differences would show), in ``crs`` (a scene of the neighbouring
    zone is rotated by ~3.5 degrees against the grid)."""
    rng = np.random.default_rng(seed)
    if crs != "EPSG:32643":  # the same corner, in the scene's zone
        (x0,), (y0,) = rasterio.warp.transform("EPSG:32643", crs, [x0], [4005100])
        x0, top = round(x0, -1) - 300, round(y0, -1) + 300  # margin for the rotation
    else:
        top = 4005100
    out = []
    for band, res in [("B02", 10), ("B03", 10), ("B04", 10), ("B08", 10), ("B11", 20)]:
        out.append(_write(folder, sensing, band, res, x0, width_px, rng, crs=crs, top=top))
    out.append(_write(folder, sensing, "B12", 20, x0, width_px, rng, crs=crs, top=top))
    scl = _write(folder, sensing, "SCL", 20, x0, width_px, rng, scl=True, crs=crs, top=top)
    return [*out, scl]


def _write(
    folder: Path,
    sensing: str,
    band: str,
    res: int,
    x0: float,
    width_px: int,
    rng,  # type: ignore[no-untyped-def]
    scl: bool = False,
    crs: str = "EPSG:32643",
    top: float = 4005100,
) -> Path:
    w, h = width_px * 10 // res, 580 * 10 // res
    if scl:
        data = np.where(rng.uniform(size=(h, w)) < 0.2, 8, 5).astype(np.uint16)  # 20 % cloud
    else:
        data = rng.integers(1500, 9000, size=(h, w)).astype(np.uint16)
    path = folder / f"T43SDV_{sensing}_{band}_{res}m.tif"
    path.parent.mkdir(parents=True, exist_ok=True)
    with rasterio.open(
        path,
        "w",
        driver="GTiff",
        width=w,
        height=h,
        count=1,
        dtype="uint16",
        crs=crs,
        transform=rasterio.transform.from_origin(x0, top, res, res),
        nodata=0,
    ) as dst:
        dst.write(data, 1)
    return path


@pytest.mark.parametrize(
    ("res", "crs"), [(10.0, "EPSG:32643"), (30.0, "EPSG:32643"), (10.0, "EPSG:32644")]
)
def test_tile_mosaic_equals_the_whole_composite(tmp_path: Path, res: float, crs: str) -> None:
    """Also for scenes of the neighbouring UTM zone (rotated against the grid, bilinear):
    GDAL sizes the kernel per chunk of a warped dataset, so tiles read the region's."""
    # Two overlapping scenes over the west 4/5 of the grid; the east tiles have none.
    files = _scene(tmp_path / "a", "20210818T054600", 399900, 250, 1, crs)
    files += _scene(tmp_path / "b", "20210828T054600", 401000, 100, 2, crs)
    grid = RegionGrid.from_bounds("EPSG:32643", GRID.bounds, res)
    grid.save(tmp_path / "g.json")
    whole = tmp_path / "whole.tif"
    build_optical_composite(files, tmp_path / "g.json", whole, min_coverage=0.3, block=64)
    # 3 x 2 tiles with seams at odd places (the workflow's are 256 px multiples)
    h, w = grid.shape
    cuts_r, cuts_c = [0, int(h * 0.4) + 1, h], [0, int(w * 0.257), int(w * 0.834), w]
    tiles = {
        f"r{i}c{j}": (cuts_r[i], cuts_c[j], cuts_r[i + 1] - cuts_r[i], cuts_c[j + 1] - cuts_c[j])
        for i in range(2)
        for j in range(3)
    }
    parts = []
    for tid, (r0, c0, h, w) in tiles.items():
        dest = tmp_path / "tiles" / f"{tid}.tif"
        build_optical_composite(
            files, tmp_path / "g.json", dest, block=64, tile=Window(c0, r0, w, h)
        )
        parts.append((dest, Window(c0, r0, w, h)))
    vrt = tmp_path / "optical.vrt"
    gather_optical_tiles(tmp_path / "g.json", parts, vrt, min_coverage=0.3)
    with rasterio.open(whole) as a, rasterio.open(vrt) as b:
        assert a.descriptions == b.descriptions and a.transform == b.transform
        assert b.tags()["ACQUISITION_DATES"] == a.tags()["ACQUISITION_DATES"]
        assert b.tags()["SENSOR"] == a.tags()["SENSOR"] == "sentinel-2-l2a"
        x, y = a.read(), b.read()
    assert np.array_equal(np.isnan(x), np.isnan(y))
    assert np.allclose(x, y, equal_nan=True, atol=1e-6)
    assert (y[-1] == 0).any() and (y[-1] > 0).any()  # an uncovered and a covered part
    with rasterio.open(parts[-1][0]) as east:  # the last tile: no scene reaches it
        assert int(east.tags()["CLEAR_PIXELS"]) == 0 and np.isnan(east.read(1)).all()


def test_region_coverage_is_checked_when_gathering(tmp_path: Path) -> None:
    files = _scene(tmp_path / "a", "20210818T054600", 399900, 150, 1)  # a sliver of the west
    GRID.save(tmp_path / "g.json")
    r0, c0, h, w = 0, 0, GRID.height, 128
    dest = tmp_path / "t.tif"
    build_optical_composite(files, tmp_path / "g.json", dest, tile=Window(c0, r0, w, h))
    rest = tmp_path / "rest.tif"
    build_optical_composite(
        files, tmp_path / "g.json", rest, tile=Window(128, 0, GRID.width - 128, h)
    )
    parts = [(dest, Window(c0, r0, w, h)), (rest, Window(128, 0, GRID.width - 128, h))]
    with pytest.raises(InputDataError, match="clear optical observation"):
        gather_optical_tiles(tmp_path / "g.json", parts, tmp_path / "o.vrt", min_coverage=0.5)
    assert not (tmp_path / "o.vrt").exists()


def test_tiles_off_the_block_lattice_equal_the_whole_composite(tmp_path: Path) -> None:
    """Tiles of 768 px (20 km at 30 m) read windows of another size than the whole grid's
    1024 px blocks: from band files of the neighbouring UTM zone (rotated, bilinear) they
    still equal the whole composite, because GDAL warps block by block, never one read as
    one chunk (which differed by up to 5 DN between 768 and 1024 px reads)."""
    files = _scene(tmp_path / "a", "20210818T054600", 399900, 1420, 1, "EPSG:32644")
    grid = RegionGrid.from_bounds("EPSG:32643", (400000, 4003000, 413000, 4005000), 10.0)
    grid.save(tmp_path / "g.json")
    assert grid.width > 1024
    whole = tmp_path / "whole.tif"
    build_optical_composite(files, tmp_path / "g.json", whole, min_coverage=0.3)
    cols = [0, 768, grid.width]
    with rasterio.open(whole) as src:
        x = src.read()
    for c0, c1 in itertools.pairwise(cols):
        tile = Window(c0, 0, c1 - c0, grid.height)
        dest = tmp_path / f"tile_{c0}.tif"
        build_optical_composite(files, tmp_path / "g.json", dest, tile=tile)
        with rasterio.open(dest) as src:
            y = src.read()
        part = x[:, :, c0:c1]
        assert np.array_equal(np.isnan(part), np.isnan(y))
        assert np.allclose(part, y, equal_nan=True, atol=1e-6), np.nanmax(np.abs(part - y))
