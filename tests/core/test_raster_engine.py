"""The raster engine: block writes on the grid, band metadata, COG output, atomicity, halos."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import rasterio

from glaciermap.core.grid import RegionGrid
from glaciermap.core.raster import grid_writer, halo_windows, tile_tags


@pytest.fixture
def grid() -> RegionGrid:
    return RegionGrid.from_bounds("EPSG:32643", (400000, 4000000, 420000, 4015000), 10)


def test_blocks_metadata_and_cog(tmp_path: Path, grid: RegionGrid) -> None:
    """Blocks written one by one give the array; descriptions, units, scales, offsets and
    tags are set; the COG is tiled with overviews and GDAL reads its layout as a COG."""
    rng = np.random.default_rng(0)
    full = rng.random((2, *grid.shape), dtype=np.float32)
    dest = tmp_path / "p.tif"
    with grid_writer(
        dest,
        grid,
        ["probability", "uncertainty"],
        nodata=np.nan,
        tags={"MODEL": "m"},
        units=["1", "1"],
        scales=[1.0, 0.5],
        offsets=[0.0, 0.1],
        cog=True,
    ) as dst:
        for win, _ in halo_windows(grid, 700):
            r, c = int(win.row_off), int(win.col_off)
            dst.write(full[:, r : r + win.height, c : c + win.width], window=win)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["p.tif"]
    with rasterio.open(dest) as src:
        assert src.descriptions == ("probability", "uncertainty")
        assert src.units == ("1", "1") and src.scales == (1.0, 0.5) and src.offsets == (0.0, 0.1)
        assert src.tags()["MODEL"] == "m"
        assert src.overviews(1), "no overviews"
        assert src.block_shapes[0] == (512, 512)
        assert src.tags(ns="IMAGE_STRUCTURE").get("LAYOUT") == "COG"
        np.testing.assert_array_equal(src.read(), full)


def test_failure_leaves_nothing(tmp_path: Path, grid: RegionGrid) -> None:
    dest = tmp_path / "p.tif"
    dest.write_bytes(b"old")
    with pytest.raises(RuntimeError), grid_writer(dest, grid, ["a"], cog=True) as dst:
        dst.write(np.zeros((1, 10, 10), np.float32), window=((0, 10), (0, 10)))
        raise RuntimeError("killed")
    assert dest.read_bytes() == b"old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["p.tif"]


def test_halo_windows_cover_the_grid_once(grid: RegionGrid) -> None:
    seen = np.zeros(grid.shape, np.int32)
    for win, read in halo_windows(grid, 600, halo=3):
        r, c = int(win.row_off), int(win.col_off)
        seen[r : r + win.height, c : c + win.width] += 1
        assert read.row_off == r - 3 and read.height == win.height + 6
        assert read.col_off == c - 3 and read.width == win.width + 6
    assert (seen == 1).all()


def test_a_tile_from_elsewhere_is_named_at_the_gather(tmp_path: Path, grid: RegionGrid) -> None:
    """A gather sums a count tag over the tiles; a file without it (written by something
    else, or an older version) is one line naming it, not a KeyError."""
    from glaciermap.core.errors import InputDataError

    with grid_writer(tmp_path / "t.tif", grid, ["elevation"], tags={"MISSING_PIXELS": "3"}):
        pass
    assert tile_tags(tmp_path / "t.tif", "MISSING_PIXELS", "terrain")["MISSING_PIXELS"] == "3"
    with pytest.raises(InputDataError, match=r"t\.tif: no COVERED_PIXELS tag .*tiled SAR step"):
        tile_tags(tmp_path / "t.tif", "COVERED_PIXELS", "SAR")
