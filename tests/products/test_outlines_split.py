"""Glacier complexes split into glaciers: along inventory ice divides or drainage basins."""

from __future__ import annotations

from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import pyogrio
import pytest
import shapely
from shapely.geometry import box

from glaciermap.core.grid import RegionGrid, write_raster
from glaciermap.ingest.labels import rasterize_inventory
from glaciermap.products.outlines import _merge_small, polygonize_probability
from glaciermap.products.split import nearest_code as _nearest_code

X0, Y0 = 400_000.0, 4_000_000.0
G = RegionGrid.from_bounds("EPSG:32643", (X0, Y0, X0 + 2000, Y0 + 1000), 10)  # 100 x 200 px


def _probability(tmp_path: Path, blobs: list[tuple[int, int, int, int]]) -> Path:
    p = np.zeros((1, *G.shape), np.float32)
    for r0, r1, c0, c1 in blobs:
        p[0, r0:r1, c0:c1] = 0.9
    path = tmp_path / "p.tif"
    write_raster(path, p, G, ["probability"], nodata=np.nan)
    return path


def _layers(path: Path) -> tuple[gpd.GeoDataFrame, gpd.GeoDataFrame]:
    assert [str(n) for n, _ in pyogrio.list_layers(path)] == ["glaciers", "complexes"]
    return gpd.read_file(path, layer="glaciers"), gpd.read_file(path, layer="complexes")


def _areas_add_up(glaciers: gpd.GeoDataFrame, complexes: gpd.GeoDataFrame) -> None:
    assert glaciers.geometry.is_valid.all() and complexes.geometry.is_valid.all()
    per_complex = glaciers.groupby("complex_id")["area_km2"].sum()
    for _, c in complexes.iterrows():
        assert per_complex[c["complex_id"]] == pytest.approx(c["area_km2"], rel=1e-3)
        assert c["area_km2"] == pytest.approx(c.geometry.area / 1e6, rel=1e-9)
    # glaciers tile their complexes: no overlaps
    union = glaciers.geometry.union_all().area
    assert union == pytest.approx(glaciers.geometry.area.sum(), rel=1e-6)


@pytest.mark.filterwarnings("ignore:More than one layer found")
@pytest.mark.parametrize("simplify_m", [0.0, 15.0])
def test_blob_over_two_inventory_glaciers_gives_two_glaciers(
    tmp_path: Path, simplify_m: float
) -> None:
    # One 0.6 km2 blob over two inventory glaciers with a 50 m gap between them, and a
    # separate blob 750 m from the nearest inventory glacier, beyond 500 m: not in it.
    prob = _probability(tmp_path, [(20, 80, 20, 120), (85, 100, 190, 200)])
    inv = tmp_path / "inv.gpkg"
    gpd.GeoDataFrame(
        {"RGIId": ["RGI60-14.00001", "RGI60-14.00002"]},
        geometry=[
            box(X0 + 250, Y0 + 250, X0 + 700, Y0 + 750),
            box(X0 + 750, Y0 + 250, X0 + 1150, Y0 + 750),
        ],
        crs=G.crs,
    ).to_crs("EPSG:4326").to_file(inv)
    out = tmp_path / "o.gpkg"
    written = polygonize_probability(
        prob,
        out,
        "hunza",
        2021,
        min_area_km2=0.01,
        inventory=inv,
        simplify_m=simplify_m,
        max_inventory_distance_m=500.0,
    )
    glaciers, complexes = _layers(out)
    assert written.glaciers == len(glaciers) == 3 and written.complexes == len(complexes) == 2
    assert gpd.read_file(out).columns.tolist() == glaciers.columns.tolist()  # default layer
    big = complexes.sort_values("area_km2").iloc[-1]
    in_big = glaciers[glaciers["complex_id"] == big["complex_id"]].sort_values("inventory_id")
    assert in_big["inventory_id"].tolist() == ["RGI60-14.00001", "RGI60-14.00002"]
    assert big["inventory_id"] == "RGI60-14.00001"  # the larger overlap
    assert big["glacier_id"] == big["complex_id"]
    # the divide lies half way between the two inventory glaciers (x = 725 m)
    west = in_big.iloc[0].geometry
    assert west.bounds[2] == pytest.approx(X0 + 725, abs=15 + simplify_m)
    assert in_big["area_km2"].iloc[0] == pytest.approx(0.6 * (725 - 200) / 1000, rel=0.03)
    far = glaciers[glaciers["complex_id"] != big["complex_id"]].iloc[0]
    assert pd.isna(far["inventory_id"])
    _areas_add_up(glaciers, complexes)
    assert set(glaciers["region"]) == {"hunza"} and set(glaciers["year"]) == {2021}
    assert glaciers["glacier_id"].is_unique and glaciers.crs == G.rio_crs


@pytest.mark.filterwarnings("ignore:More than one layer found")
def test_evaluation_raster_of_glaciers_equals_that_of_complexes(tmp_path: Path) -> None:
    prob = _probability(tmp_path, [(20, 80, 20, 180)])
    inv = tmp_path / "inv.gpkg"
    gpd.GeoDataFrame(
        {"RGIId": ["a", "b", "c", "tiny"]},
        geometry=[
            box(X0 + 200, Y0 + 300, X0 + 800, Y0 + 700),
            box(X0 + 900, Y0 + 300, X0 + 1200, Y0 + 700),
            box(X0 + 1300, Y0 + 200, X0 + 1750, Y0 + 900),
            box(X0 + 1770, Y0 + 500, X0 + 1790, Y0 + 520),  # its share: < min_area_km2
        ],
        crs=G.crs,
    ).to_file(inv)
    out = tmp_path / "o.gpkg"
    polygonize_probability(prob, out, "r", 2020, inventory=inv)
    glaciers, complexes = _layers(out)
    assert sorted(glaciers["inventory_id"]) == ["a", "b", "c"] and len(complexes) == 1
    cx = tmp_path / "complexes.gpkg"
    complexes.to_file(cx)
    raster = rasterize_inventory(out, G)  # as evaluate_outlines does: the first layer
    assert np.array_equal(raster, rasterize_inventory(cx, G))
    assert raster.sum() > 0.95 * 60 * 160


def _two_valleys() -> np.ndarray:
    """Two valleys (x = 500 m and 1500 m) falling south, a ridge at x = 1000 m between them,
    and a 30 m deep, 0.02 km2 pit on the western glacier (not an outlet)."""
    rows, cols = np.mgrid[0 : G.height, 0 : G.width].astype(np.float32)
    to_floor = np.minimum(np.abs(cols - 50), np.abs(cols - 150))
    z = 4000.0 - 8.0 * rows + 3.0 * to_floor
    z[40:55, 40:55] -= 30.0
    return z


def test_dem_splits_a_complex_along_its_drainage_divide(tmp_path: Path) -> None:
    prob = _probability(tmp_path, [(10, 90, 20, 180)])
    dem = tmp_path / "dem.tif"
    write_raster(dem, _two_valleys()[None], G, ["elevation"], nodata=np.nan)
    out = tmp_path / "o.gpkg"
    polygonize_probability(prob, out, "r", 2020, min_area_km2=0.01, dem=dem)
    glaciers, complexes = _layers(out)
    assert len(complexes) == 1 and len(glaciers) == 2
    assert glaciers["inventory_id"].isna().all()
    west, east = sorted(glaciers.geometry, key=lambda g: g.centroid.x)
    assert west.bounds[2] == pytest.approx(X0 + 1000, abs=20)  # split at the ridge
    assert east.bounds[0] == pytest.approx(X0 + 1000, abs=20)
    assert west.area == pytest.approx(east.area, rel=0.05)
    _areas_add_up(glaciers, complexes)


def test_without_inventory_or_dem_glaciers_are_complexes(tmp_path: Path) -> None:
    prob = _probability(tmp_path, [(10, 90, 20, 180), (10, 30, 190, 200)])
    out = tmp_path / "o.gpkg"
    polygonize_probability(prob, out, "r", 2020)
    glaciers, complexes = _layers(out)
    assert len(glaciers) == len(complexes) == 2
    assert sorted(glaciers["area_km2"]) == pytest.approx(sorted(complexes["area_km2"]))
    assert sorted(glaciers["complex_id"]) == sorted(complexes["complex_id"])


def test_no_ice_writes_two_empty_layers(tmp_path: Path) -> None:
    out = tmp_path / "o.gpkg"
    assert polygonize_probability(_probability(tmp_path, []), out, "r", 2020).glaciers == 0
    glaciers, complexes = _layers(out)
    assert len(glaciers) == len(complexes) == 0
    assert not list(tmp_path.glob(".o.*"))  # no temporary file left


def test_small_pieces_join_the_neighbour_with_the_longest_border() -> None:
    pieces = np.zeros((10, 10), np.int32)
    pieces[:, :5] = 1
    pieces[:, 5:] = 2
    pieces[0:2, 4:7] = 3  # 6 px: 3 px of border with piece 1, 4 with piece 2
    pieces[4:6, 5] = 4  # 2 px: 2 px of border with piece 1, 4 with piece 2
    merged = _merge_small(pieces, min_px=7)
    assert merged.max() == 2
    assert (merged[pieces == 3] == merged[9, 9]).all()
    assert (merged[pieces == 4] == merged[9, 9]).all()
    assert (merged[pieces == 1] == merged[9, 0]).all() and merged[9, 0] != merged[9, 9]
    assert np.array_equal(_merge_small(pieces, min_px=1), pieces)


@pytest.mark.filterwarnings("ignore:More than one layer found")
def test_simplified_glaciers_keep_their_shared_divide(tmp_path: Path) -> None:
    """A diagonal (staircase) divide simplified on both sides alike: no gaps, no overlaps."""
    from shapely.geometry import Polygon

    prob = _probability(tmp_path, [(20, 80, 20, 180)])
    inv = tmp_path / "inv.gpkg"
    corners = [(200, 200), (1800, 200), (1800, 800), (200, 800)]
    a, b, c, d = ((X0 + x, Y0 + y) for x, y in corners)
    gpd.GeoDataFrame(
        {"RGIId": ["low", "high"]}, geometry=[Polygon([a, b, d]), Polygon([b, c, d])], crs=G.crs
    ).to_file(inv)
    exact, simple = tmp_path / "exact.gpkg", tmp_path / "simple.gpkg"
    polygonize_probability(prob, exact, "r", 2020, inventory=inv)
    polygonize_probability(prob, simple, "r", 2020, inventory=inv, simplify_m=25.0)
    glaciers, complexes = _layers(simple)
    assert sorted(glaciers["inventory_id"]) == ["high", "low"]
    _areas_add_up(glaciers, complexes)
    cx = complexes.geometry.iloc[0]
    assert cx.geom_type == "Polygon" and not list(cx.interiors)  # no slivers between them
    assert len(shapely.get_coordinates(glaciers.geometry.iloc[0])) < len(
        shapely.get_coordinates(_layers(exact)[0].geometry.iloc[0])
    )
    assert cx.symmetric_difference(_layers(exact)[1].geometry.iloc[0]).area < 0.01 * cx.area


@pytest.mark.parametrize("max_px", [0.0, 1.5, 3.0, 7.2, 1e6])
def test_nearest_code_is_the_nearest_inventory_pixel_within_reach(max_px: float) -> None:
    """The row-blocked feature transform against distances computed pixel by pixel."""
    rng = np.random.default_rng(int(max_px * 10) % 97)
    inv = np.zeros((37, 53), np.int32)
    for k in range(1, 6):
        r, c = int(rng.integers(0, 37)), int(rng.integers(0, 53))
        inv[max(0, r - 2) : r + 2, max(0, c - 3) : c + 3] = k
    got = _nearest_code(inv, max_px, block_px=53 * 5)  # 8 row blocks, the last of 2 rows
    assert (_nearest_code(inv, max_px) == got).all()
    rr, cc = np.nonzero(inv)
    for r, c in zip(*(a.ravel() for a in np.indices(inv.shape)), strict=True):
        d2 = (rr - r) ** 2 + (cc - c) ** 2
        near = d2 == d2.min()
        if d2.min() > max_px**2:
            assert got[r, c] == 0
        else:  # ties between codes may go either way
            assert got[r, c] in set(inv[rr[near], cc[near]].tolist())
    assert not _nearest_code(np.zeros((4, 5), np.int32), 10.0).any()


def test_merges_chain_and_ties_go_to_the_lower_id() -> None:
    from glaciermap.products.split import count_pairs, edge_pairs, merge_small

    # 1 (2 px) joins 2 (3 px), which, still small, joins 3; 4 and 5 tie for 6's border
    size = np.array([0, 2, 3, 100, 50, 50, 4])
    pairs = count_pairs(
        np.array([1, 2, 4, 5, 4]), np.array([2, 3, 6, 6, 5]), np.array([2, 1, 2, 2, 9])
    )
    relabel = merge_small(size, pairs, min_px=10)
    assert relabel.tolist() == [0, 1, 1, 1, 2, 3, 2]
    # borders counted within a stripe and across its top edge (the row above)
    stripe = np.array([[1, 1, 2], [3, 3, 2]])
    i, j, c = edge_pairs(stripe, above=np.array([4, 1, 0]))
    assert list(zip(i.tolist(), j.tolist(), c.tolist(), strict=True)) == [
        (1, 2, 1),
        (1, 3, 2),
        (1, 4, 1),
        (2, 3, 1),
    ]
