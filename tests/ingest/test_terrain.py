from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import rasterio
import rasterio.warp
from affine import Affine

from glaciermap.core.errors import InputDataError
from glaciermap.core.grid import RegionGrid
from glaciermap.ingest.names import copernicus_tile_bounds, select_dem_tiles
from glaciermap.ingest.terrain import build_terrain, mosaic_to_grid, slope_aspect


def test_slope_aspect_of_a_plane() -> None:
    # z rises 1 m per 10 m towards the east: slope atan(0.1), facing west (270 degrees).
    x = np.arange(20) * 10.0
    dem = np.tile(x * 0.1, (15, 1))
    slope, aspect = slope_aspect(dem, 10.0)
    # Linear extrapolation at the edges (as gdaldem -compute_edges) is exact on a plane.
    assert np.allclose(slope, np.degrees(np.arctan(0.1)), atol=1e-4)
    assert np.allclose(aspect, 270.0, atol=1e-3)
    # Rising towards the north (row 0 is north): faces south (180).
    dem_n = np.tile((np.arange(15)[::-1] * 10.0 * 0.2)[:, None], (1, 20))
    s2, a2 = slope_aspect(dem_n, 10.0)
    assert np.allclose(s2[1:-1, 1:-1], np.degrees(np.arctan(0.2)))
    assert np.allclose(a2[1:-1, 1:-1], 180.0)
    flat_s, flat_a = slope_aspect(np.zeros((5, 5)), 10.0)
    assert np.all(flat_s == 0) and np.all(np.isnan(flat_a))


def test_copernicus_names() -> None:
    assert copernicus_tile_bounds("Copernicus_DSM_COG_10_N36_00_E074_00_DEM.tif") == (
        74,
        36,
        75,
        37,
    )
    assert copernicus_tile_bounds("Copernicus_DSM_COG_30_S01_00_W071_00_DEM.tif") == (
        -71,
        -1,
        -70,
        0,
    )
    assert copernicus_tile_bounds("srtm.tif") is None
    files = [
        "Copernicus_DSM_COG_10_N36_00_E074_00_DEM.tif",
        "Copernicus_DSM_COG_10_N40_00_E074_00_DEM.tif",
        "other_dem.tif",
    ]
    sel = [p.name for p in select_dem_tiles(files, (74.2, 36.2, 74.4, 36.4))]
    assert sel == ["Copernicus_DSM_COG_10_N36_00_E074_00_DEM.tif", "other_dem.tif"]


def _geotiff(path: Path, data: np.ndarray, transform: Affine, crs: str, nodata: float) -> Path:
    with rasterio.open(
        path,
        "w",
        driver="GTiff",
        width=data.shape[1],
        height=data.shape[0],
        count=1,
        dtype="float32",
        crs=crs,
        transform=transform,
        nodata=nodata,
    ) as d:
        d.write(data.astype(np.float32), 1)
    return path


def test_mosaic_two_tiles_fill_each_other(tmp_path: Path) -> None:
    # Two EPSG:4326 halves of a linear ramp: the mosaic on a UTM grid is seamless.
    px = 1 / 3600
    cols = np.arange(400)
    west = _geotiff(
        tmp_path / "w.tif",
        np.tile(cols[:200] * 1.0, (400, 1)),
        Affine(px, 0, 74.0, 0, -px, 36.1),
        "EPSG:4326",
        -32767,
    )
    east = _geotiff(
        tmp_path / "e.tif",
        np.tile(cols[200:] * 1.0, (400, 1)),
        Affine(px, 0, 74.0 + 200 * px, 0, -px, 36.1),
        "EPSG:4326",
        -32767,
    )
    import rasterio.warp

    left, b, r, t = rasterio.warp.transform_bounds(
        "EPSG:4326", "EPSG:32643", 74.01, 36.01, 74.1, 36.09
    )
    g = RegionGrid.from_bounds("EPSG:32643", (left, b, r, t), 30)
    dem = mosaic_to_grid([west, east], g)
    assert np.isfinite(dem).all()
    # The ramp increases eastwards everywhere, also across the seam.
    assert (np.diff(dem, axis=1) > 0).mean() > 0.98


def test_mosaic_reports_uncovered_region(tmp_path: Path) -> None:
    tile = _geotiff(
        tmp_path / "t.tif",
        np.ones((10, 10)),
        Affine(0.001, 0, 10, 0, -0.001, 50),
        "EPSG:4326",
        -32767,
    )
    g = RegionGrid.from_bounds("EPSG:32643", (400000, 4000000, 401000, 4001000), 10)
    with pytest.raises(InputDataError, match="cover only 0%"):
        mosaic_to_grid([tile], g)


def test_real_dem_hintereisferner(shared_data: Path, tmp_path: Path) -> None:
    """SRTM of Hintereisferner (EPSG:4326) onto a 30 m UTM 32N grid: plausible slope/aspect."""
    dem_file = shared_data / "oggm/hintereisferner/hef_srtm.tif"
    g = RegionGrid.from_bounds("EPSG:32632", (630000, 5180000, 645000, 5195000), 30)
    g.save(tmp_path / "g.json")
    build_terrain(
        [dem_file],
        tmp_path / "g.json",
        tmp_path / "dem.tif",
        tmp_path / "slope.tif",
        tmp_path / "aspect.tif",
    )
    with rasterio.open(tmp_path / "dem.tif") as d:
        dem = d.read(1)
    with rasterio.open(tmp_path / "slope.tif") as s:
        slope = s.read(1)
    assert 1500 < np.nanmin(dem) and np.nanmax(dem) < 3800
    assert 15 < np.nanmedian(slope) < 40  # Alpine relief
    assert np.nanmax(slope) < 80


def test_slope_file_blocks_match_in_memory(tmp_path: Path) -> None:
    from glaciermap.ingest.terrain import slope_file

    rng = np.random.default_rng(0)
    dem = np.cumsum(np.cumsum(rng.normal(size=(300, 270)), 0), 1).astype(np.float32)
    dem[100, 100] = -9999  # nodata: its neighbours use their own centre value instead
    t = Affine(10, 0, 400000, 0, -10, 4000000)
    src = tmp_path / "dem.tif"
    with rasterio.open(
        src,
        "w",
        driver="GTiff",
        width=270,
        height=300,
        count=1,
        dtype="float32",
        crs="EPSG:32643",
        transform=t,
        nodata=-9999,
    ) as d:
        d.write(dem, 1)
    expected, _ = slope_aspect(np.where(dem == -9999, np.nan, dem), 10.0)
    for block, threads in ((64, 2), (1000, 1)):
        out = tmp_path / f"s{block}.tif"
        slope_file(src, out, threads=threads, block=block)
        with rasterio.open(out) as o:
            got = o.read(1)
        assert np.isnan(got[100, 100])
        assert np.allclose(got, expected, atol=1e-4, equal_nan=True)
        assert np.isfinite(got[99, 99])


def test_block_wise_terrain_equals_whole_grid(tmp_path: Path) -> None:
    """build_terrain works block by block (one-pixel halo, extrapolated at the grid edge as
    gdaldem -compute_edges): DEM, slope and aspect are those of the whole-grid functions,
    whatever the block size, NaN holes included."""
    from affine import Affine

    from glaciermap.core.io import read_bands

    rng = np.random.default_rng(3)
    z = (np.cumsum(rng.normal(0, 4, (90, 130)), axis=1) + 3000).astype(np.float32)
    z[40:44, 60:70] = -9999  # a void
    dem = tmp_path / "dem.tif"
    prof = {
        "driver": "GTiff",
        "width": 130,
        "height": 90,
        "count": 1,
        "dtype": "float32",
        "crs": "EPSG:32643",
        "transform": Affine(30, 0, 450000, 0, -30, 4020000),
        "nodata": -9999,
    }
    with rasterio.open(dem, "w", **prof) as dst:
        dst.write(z, 1)
    g = RegionGrid.from_bounds("EPSG:32643", (450000, 4017300, 453900, 4020000), 30)
    g.save(tmp_path / "g.json")
    whole = mosaic_to_grid([dem], g)
    slope, aspect = slope_aspect(whole, 30.0)
    for block in (1024, 32):
        out = [tmp_path / f"{n}{block}.tif" for n in ("d", "s", "a")]
        build_terrain([dem], tmp_path / "g.json", *out, block=block)
        got = [read_bands(p)[0][0] for p in out]
        np.testing.assert_array_equal(got[0], whole)
        np.testing.assert_array_equal(got[1], slope)
        np.testing.assert_array_equal(got[2], aspect)


def _odd_tiles(height: int, width: int) -> dict[str, tuple[int, int, int, int]]:
    """3 x 2 processing tiles with seams at odd places (the workflow's are 256 px multiples)."""
    cuts_r, cuts_c = [0, 37, height], [0, 1, 61, width]
    return {
        f"r{i}c{j}": (cuts_r[i], cuts_c[j], cuts_r[i + 1] - cuts_r[i], cuts_c[j + 1] - cuts_c[j])
        for i in range(2)
        for j in range(3)
    }


@pytest.mark.parametrize("dem_crs", ["EPSG:32643", "EPSG:4326"])
def test_terrain_tiles_equal_the_whole_grid(tmp_path: Path, dem_crs: str) -> None:
    """One job per processing tile (issue 11): DEM, slope and aspect of the gathered tiles equal
    build_terrain's on the whole grid, at the seams (a tile one pixel wide included), at the
    region's edge and around a void, from two DEM files of which some tiles see one.

    In the grid's CRS exactly. From EPSG:4326 (Copernicus DEM tiles) within 0.25 m, slope
    within 0.25 degree and aspect within 2 degrees on slopes over 10 degrees: rasterio's warp
    always approximates the coordinate transformation along each warped window (0.125 px
    threshold), so windows that start elsewhere differ by a few hundredths of a pixel, far
    below a DEM's accuracy (Copernicus GLO-30: ~2-4 m)."""
    from rasterio.windows import Window

    from glaciermap.core.io import read_bands
    from glaciermap.ingest.terrain import build_terrain_tile, gather_terrain_tiles

    rng = np.random.default_rng(5)
    z = (np.cumsum(rng.normal(0, 3, (400, 400)), axis=1) + 3000).astype(np.float32)
    z[200:206, 100:130] = -32767  # a void
    if dem_crs == "EPSG:4326":
        px = 1 / 3600
        t_west, t_east = (
            Affine(px, 0, 74.0, 0, -px, 36.1),
            Affine(px, 0, 74.0 + 200 * px, 0, -px, 36.1),
        )
        bounds = rasterio.warp.transform_bounds(
            "EPSG:4326", "EPSG:32643", 74.01, 36.02, 74.1, 36.09
        )
    else:
        t_west, t_east = (
            Affine(30, 0, 450000, 0, -30, 4020000),
            Affine(30, 0, 456000, 0, -30, 4020000),
        )
        bounds = (450300, 4009000, 461700, 4019700)
    west = _geotiff(tmp_path / "w.tif", z[:, :200], t_west, dem_crs, -32767)
    east = _geotiff(tmp_path / "e.tif", z[:, 200:], t_east, dem_crs, -32767)
    g = RegionGrid.from_bounds("EPSG:32643", bounds, 30)
    g.save(tmp_path / "g.json")
    whole = [tmp_path / f"whole_{n}.tif" for n in ("dem", "slope", "aspect")]
    build_terrain([west, east], tmp_path / "g.json", *whole, block=64)
    tiles = _odd_tiles(g.height, g.width)
    paths: dict[str, list[Path]] = {"dem": [], "slope": [], "aspect": []}
    windows = []
    for tid, (r0, c0, h, w) in tiles.items():
        out = {k: tmp_path / tid / f"{k}.tif" for k in paths}
        (tmp_path / tid).mkdir()
        build_terrain_tile(
            [west, east],
            tmp_path / "g.json",
            out["dem"],
            out["slope"],
            out["aspect"],
            Window(c0, r0, w, h),
            block=64,
        )
        for k in paths:
            paths[k].append(out[k])
        windows.append(Window(c0, r0, w, h))
    dests = {k: tmp_path / f"{k}.vrt" for k in paths}
    gather_terrain_tiles(tmp_path / "g.json", windows, paths, dests, [west, east])
    ref = {k: read_bands(p)[0][0] for k, p in zip(paths, whole, strict=True)}
    got = {k: read_bands(dests[k])[0][0] for k in paths}
    assert np.isnan(ref["dem"]).any() and np.isfinite(ref["dem"]).mean() > 0.99
    if dem_crs == "EPSG:32643":
        for k in paths:
            np.testing.assert_array_equal(got[k], ref[k], err_msg=k)
    else:
        np.testing.assert_array_equal(np.isnan(got["dem"]), np.isnan(ref["dem"]))
        np.testing.assert_allclose(got["dem"], ref["dem"], atol=0.25)
        np.testing.assert_allclose(got["slope"], ref["slope"], atol=0.25)
        steep = ref["slope"] > 10
        turn = (got["aspect"] - ref["aspect"] + 180) % 360 - 180
        assert steep.mean() > 0.3 and np.nanmax(np.abs(turn[steep])) < 2.0
    with rasterio.open(dests["slope"]) as src:
        assert src.descriptions == ("slope",) and src.units == ("degree",)


def test_terrain_tiles_check_the_cover_of_the_region(tmp_path: Path) -> None:
    """A DEM under a corner of the region: each tile is written (NaN where no file reaches),
    the gather refuses with the cover line and writes no VRT."""
    from rasterio.windows import Window

    from glaciermap.ingest.terrain import build_terrain_tile, gather_terrain_tiles

    g = RegionGrid.from_bounds("EPSG:32643", (450000, 4017000, 453000, 4020000), 30)
    g.save(tmp_path / "g.json")
    dem = _geotiff(
        tmp_path / "dem.tif",
        np.full((30, 30), 2000.0),
        Affine(30, 0, 450000, 0, -30, 4020000),
        "EPSG:32643",
        -9999,
    )
    paths: dict[str, list[Path]] = {"dem": [], "slope": [], "aspect": []}
    windows = [Window(0, 0, 50, 50), Window(50, 0, 50, 50), Window(0, 50, 100, 50)]
    for i, win in enumerate(windows):
        out = [tmp_path / f"{k}{i}.tif" for k in paths]
        # the DAG gives a tile no DEM file reaches no files: it is NaN
        build_terrain_tile([dem] if i < 2 else [], tmp_path / "g.json", *out, win)
        for k, p in zip(paths, out, strict=True):
            paths[k].append(p)
    dests = {k: tmp_path / f"{k}.vrt" for k in paths}
    with pytest.raises(InputDataError, match=r"cover only 9% .*add the missing DEM tiles"):
        gather_terrain_tiles(tmp_path / "g.json", windows, paths, dests, [dem])
    assert not any(p.exists() for p in dests.values())
