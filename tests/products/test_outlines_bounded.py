"""Polygonization in bounded memory: stripes and windows give the whole-array result."""

from __future__ import annotations

import tracemalloc
from pathlib import Path

import geopandas as gpd
import numpy as np
import pyogrio
import pytest
import rasterio
import rasterio.features
import shapely
from affine import Affine
from rasterio.enums import MaskFlags
from scipy import ndimage
from shapely.geometry import Polygon, box

from glaciermap.core.errors import InputDataError
from glaciermap.core.grid import RegionGrid, write_raster
from glaciermap.products import outlines, split
from glaciermap.products.outlines import (
    _polygonize_in_memory,
    clean_mask,
    polygonize_probability,
)
from glaciermap.products.outlines_stream import PackedMask

X0, Y0 = 400_000.0, 4_000_000.0
pytestmark = pytest.mark.filterwarnings("ignore:More than one layer found")


def _grid(height: int, width: int) -> RegionGrid:
    return RegionGrid.from_bounds("EPSG:32643", (X0, Y0, X0 + 10 * width, Y0 + 10 * height), 10)


def _write(tmp_path: Path, p: np.ndarray, name: str = "p.tif") -> Path:
    path = tmp_path / name
    write_raster(path, p[None].astype(np.float32), _grid(*p.shape), ["probability"], np.nan)
    return path


def _noise_and_blobs(height: int, width: int, seed: int = 0) -> np.ndarray:
    """A smooth random field (blobs of all sizes, with holes) plus speckle and nodata."""
    rng = np.random.default_rng(seed)
    field = ndimage.gaussian_filter(rng.random((height, width)), 4)
    p = ((field - field.min()) / (field.max() - field.min())) ** 1.5  # ~30 % ice
    p = np.where(rng.random(p.shape) < 0.01, 1 - p, p)  # speckle and pinholes
    p[rng.random(p.shape) < 0.005] = np.nan
    return p


def _same_outlines(a: Path, b: Path) -> int:
    """Both layers of two outline files hold the same features, bit for bit (mean
    probabilities up to rounding)."""
    n = 0
    for layer in ("glaciers", "complexes"):
        fa, fb = gpd.read_file(a, layer=layer), gpd.read_file(b, layer=layer)
        assert len(fa) == len(fb)
        exact = ["geometry", "mean_probability"]
        assert fa.drop(columns=exact).equals(fb.drop(columns=exact))
        # sums of the stripes' pieces, not of the whole array: equal up to rounding
        np.testing.assert_allclose(fa.mean_probability, fb.mean_probability, rtol=1e-12)
        assert shapely.equals_exact(fa.geometry.values, fb.geometry.values, 0.0).all()
        assert fb.geometry.is_valid.all()
        n += len(fa)
    return n


def _compare(tmp_path: Path, prob: Path, stripe_rows: list[int | None], **kw: object) -> int:
    ref = tmp_path / "ref.gpkg"
    _polygonize_in_memory(prob, ref, "r", 2020, **kw)  # type: ignore[arg-type]
    n = 0
    for rows in stripe_rows:
        out = tmp_path / f"o{rows}.gpkg"
        polygonize_probability(prob, out, "r", 2020, stripe_rows=rows, **kw)  # type: ignore[arg-type]
        n = _same_outlines(ref, out)
    # written in chunks (here of one complex each, as a large region's), the same layers
    flushes: list[int] = []
    flush = outlines._OutlineWriter.flush

    def counted(self: outlines._OutlineWriter) -> None:
        flushes.append(len(self.pending.complex_mean_p))
        flush(self)

    out = tmp_path / "chunked.gpkg"
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(outlines, "CHUNK_VERTICES", 4)  # any polygon has 4 vertices or more
        mp.setattr(outlines, "TAKE_VERTICES", 1)  # complete complexes traced after each stripe
        mp.setattr(outlines._OutlineWriter, "flush", counted)
        polygonize_probability(prob, out, "r", 2020, stripe_rows=7, **kw)  # type: ignore[arg-type]
    assert _same_outlines(ref, out) == n
    assert pyogrio.list_layers(out).tolist() == pyogrio.list_layers(ref).tolist()
    if not kw.get("simplify_m"):  # complexes (4-connected) are Polygons, as the layer says
        assert (gpd.read_file(out, layer="complexes").geom_type == "Polygon").all()
    n_complex = len(gpd.read_file(ref, layer="complexes"))
    if kw.get("simplify_m"):  # a coverage simplification needs them all: one write
        assert flushes == [n_complex]
        for layer, kind in pyogrio.list_layers(out).tolist():  # as pyogrio infers types
            types = set(gpd.read_file(out, layer=layer).geom_type)
            assert kind == ("Polygon" if types == {"Polygon"} else "MultiPolygon"), types
    else:
        assert [k for k in flushes if k] == [1] * n_complex
    return n


@pytest.mark.parametrize(
    "kw",
    [
        {"smooth_m": 0, "min_area_km2": 0, "max_hole_km2": 0},
        {"smooth_m": 30, "min_area_km2": 0.01, "max_hole_km2": 0.01},
        {"smooth_m": 10, "min_area_km2": 0.002, "max_hole_km2": 0},
        {"smooth_m": 20, "min_area_km2": 0, "max_hole_km2": 0.005},
        {"smooth_m": 0, "min_area_km2": 0.001, "max_hole_km2": 0.05, "simplify_m": 15.0},
    ],
)
def test_stripes_give_the_whole_array_result(tmp_path: Path, kw: dict[str, float]) -> None:
    prob = _write(tmp_path, _noise_and_blobs(150, 130))
    # 1 row up to a few times the smoothing halo (4 r: 12 rows at smooth_m 30), and default
    assert _compare(tmp_path, prob, [1, 7, 12, 30, 64, None], **kw) >= 4


def test_small_and_tall_complexes_on_a_wide_sparse_raster(tmp_path: Path) -> None:
    # complexes lying within a stripe, far apart in columns, and tall ones across the seams
    rng = np.random.default_rng(3)
    p = np.zeros((60, 900), np.float32)
    for k, c in enumerate(range(10, 880, 97)):
        r = int(rng.integers(2, 40))
        p[r : r + 3 + k % 4, c : c + 5 + k] = 1.0  # small: inside most stripes
        p[r + 6 : r + 9, c + 2 : c + 4] = 1.0
        if k % 3 == 0:
            p[5:55, c + 40 : c + 44] = 0.9  # tall: across the seams
            p[20:24, c + 40 : c + 70] = 0.8
    p += _noise_and_blobs(60, 900, seed=4) * (rng.random(p.shape) < 0.002)
    prob = _write(tmp_path, p)
    kw = {"smooth_m": 0, "min_area_km2": 0, "max_hole_km2": 0}
    assert _compare(tmp_path, prob, [4, 11, 16, None], **kw) >= 2 * 10


def test_complexes_and_holes_across_many_seams(tmp_path: Path) -> None:
    p = np.zeros((120, 90), np.float32)
    p[5:115, 5:10] = 0.9  # a tall bar over every seam
    for r in range(10, 110, 20):  # a comb: teeth join the bar at many seams
        p[r : r + 4, 10:80] = 0.8
    p[5:115, 80:85] = 0.7  # closing the comb: holes between the teeth cross seams
    p[40:43, 30:33] = 0.9  # an island in a hole
    p[0, :] = 0.6  # ice along the raster top edge
    p[60:119, 88:90] = 0.9  # and along the right and bottom edges
    p[119, 40:90] = 0.9
    prob = _write(tmp_path, p)
    for kw in (
        {"smooth_m": 0, "min_area_km2": 0, "max_hole_km2": 0},
        {"smooth_m": 0, "min_area_km2": 0.0005, "max_hole_km2": 0.2},  # some holes filled
        {"smooth_m": 10, "min_area_km2": 0.001, "max_hole_km2": 0.15},
    ):
        assert _compare(tmp_path, prob, [1, 2, 3, 5, 16, None], **kw) >= 2


def _diamond(p: np.ndarray, r0: int, c0: int, half: int) -> None:
    """A diamond drawn with 1-pixel diagonal lines: each pixel its own 4-connected patch,
    together enclosing a 4-connected hole."""
    for i in range(half + 1):
        for dr, dc in ((i, half - i), (i, half + i), (2 * half - i, half - i)):
            p[r0 + dr, c0 + dc] = 0.9
        p[r0 + 2 * half - i, c0 + half + i] = 0.9


def test_a_filled_hole_joins_diagonal_patches_into_one_complex(tmp_path: Path) -> None:
    p = np.zeros((60, 60), np.float32)
    _diamond(p, 5, 5, 6)  # hole of 61 px: filled (max_hole 0.01 km2 = 100 px)
    _diamond(p, 20, 30, 12)  # hole of 265 px: kept, its 48 pixels stay 48 complexes
    prob = _write(tmp_path, p)
    kw = {"smooth_m": 0, "min_area_km2": 0, "max_hole_km2": 0.01}
    ref = tmp_path / "ref.gpkg"
    _polygonize_in_memory(prob, ref, "r", 2020, **kw)
    complexes = gpd.read_file(ref, layer="complexes")
    assert len(complexes) == 1 + 48
    assert complexes.area.max() == pytest.approx((24 + 61) * 100)
    assert _compare(tmp_path, prob, [1, 4, 9, None], **kw) == 2 * 49


def _two_valleys(height: int, width: int) -> np.ndarray:
    rows, cols = np.mgrid[0:height, 0:width].astype(np.float32)
    to_floor = np.minimum(np.abs(cols - width / 4), np.abs(cols - 3 * width / 4))
    z = 4000.0 - 8.0 * rows + 3.0 * to_floor
    z[40:55, 40:55] -= 30.0
    z[0:3, 0:5] = np.nan  # nodata: the nearest valid elevation
    return z


@pytest.mark.parametrize("split", ["inventory", "dem", "inventory off the grid"])
def test_split_complexes_in_windows(tmp_path: Path, split: str) -> None:
    height, width = 100, 200
    p = np.zeros((height, width), np.float32)
    p[10:90, 20:180] = 0.9  # one complex over several inventory glaciers / two basins
    p[92:99, 185:199] = 0.8  # a small one far from them
    p[30:40, 60:70] = 0.0  # a hole
    p = np.maximum(p, np.where(_noise_and_blobs(height, width, 3) > 0.8, 0.7, 0.0))
    prob = _write(tmp_path, p)
    kw: dict[str, object] = {"min_area_km2": 0.005, "max_inventory_distance_m": 300.0}
    corners = [(200, 200), (1100, 150), (1000, 800), (300, 850)]
    if split.startswith("inventory"):
        shift = 0.0 if split == "inventory" else 50_000.0
        a, b, c, d = ((X0 + shift + x, Y0 + y) for x, y in corners)
        inv = tmp_path / "inv.gpkg"
        gpd.GeoDataFrame(
            {"RGIId": ["tri1", "tri2", "box", "tiny"]},
            geometry=[
                Polygon([a, b, d]),
                Polygon([b, c, d]),
                box(X0 + shift + 1200, Y0 + 200, X0 + shift + 1750, Y0 + 900),
                box(X0 + shift + 1770, Y0 + 500, X0 + shift + 1790, Y0 + 520),
            ],
            crs="EPSG:32643",
        ).to_crs("EPSG:4326").to_file(inv)
        kw["inventory"] = inv
    if split != "inventory":
        dem = tmp_path / "dem.tif"
        write_raster(dem, _two_valleys(height, width)[None], _grid(height, width), ["elevation"])
        kw["dem"] = dem
    assert _compare(tmp_path, prob, [1, 6, 25, None], **kw) >= 4
    glaciers = gpd.read_file(tmp_path / "oNone.gpkg", layer="glaciers")
    if split == "inventory":
        assert {"tri1", "tri2", "box"} <= set(glaciers["inventory_id"].dropna())
    else:
        assert glaciers["inventory_id"].isna().all()
        assert glaciers["complex_id"].value_counts().max() >= 2  # split along basins


def test_area_is_the_mask_area_and_polygons_are_valid(tmp_path: Path) -> None:
    p = _noise_and_blobs(200, 170, seed=5)
    prob = _write(tmp_path, p)
    kw = {"smooth_m": 20.0, "min_area_km2": 0.002, "max_hole_km2": 0.003}
    out = tmp_path / "o.gpkg"
    polygonize_probability(prob, out, "r", 2020, stripe_rows=9, **kw)
    glaciers = gpd.read_file(out, layer="glaciers")
    complexes = gpd.read_file(out, layer="complexes")
    assert glaciers.geometry.is_valid.all() and complexes.geometry.is_valid.all()
    mask = clean_mask(np.nan_to_num(p) >= 0.5, 10.0, **kw)
    assert glaciers.area.sum() == pytest.approx(mask.sum() * 100.0, rel=1e-3)
    assert complexes.area.sum() == pytest.approx(mask.sum() * 100.0, rel=1e-3)
    assert len(complexes) == ndimage.label(mask)[1]


def test_no_temporary_file_is_left_even_on_error(tmp_path: Path) -> None:
    bad = tmp_path / "bad.tif"
    write_raster(bad, np.zeros((1, 20, 20), np.float32), _grid(20, 20), ["uncertainty"])
    before = set(tmp_path.iterdir())
    with pytest.raises(InputDataError, match="probability"):
        polygonize_probability(bad, tmp_path / "o.gpkg", "r", 2020)
    assert set(tmp_path.iterdir()) == before
    polygonize_probability(_write(tmp_path, _noise_and_blobs(30, 30)), tmp_path / "o.gpkg", "r", 1)
    assert {f.name for f in tmp_path.iterdir()} == {f.name for f in before} | {"p.tif", "o.gpkg"}


@pytest.mark.parametrize("width", [1, 7, 8, 13, 300])
def test_packed_mask_round_trip(tmp_path: Path, width: int) -> None:
    rng = np.random.default_rng(width)
    m = rng.random((40, width)) < 0.4
    with PackedMask(m.shape, tmp_path) as store:
        for r0 in range(0, 40, 6):
            store.write_rows(r0, m[r0 : r0 + 6])
        assert np.array_equal(store.read_rows(0, 40), m)
        for _ in range(30):
            r0, c0 = int(rng.integers(0, 40)), int(rng.integers(0, width))
            r1, c1 = int(rng.integers(r0 + 1, 41)), int(rng.integers(c0 + 1, width + 1))
            win = store.read_window(slice(r0, r1), slice(c0, c1))
            assert np.array_equal(win, m[r0:r1, c0:c1])
    assert list(tmp_path.iterdir()) == []


def _blobs(height: int, width: int) -> np.ndarray:
    """Small separate blobs on a regular lattice (complexes stay small however large)."""
    p = np.zeros((height, width), np.float32)
    for r in range(4, height - 12, 50):
        for c in range(4, width - 12, 50):
            p[r : r + 9 + (r // 50) % 4, c : c + 9 + (c // 50) % 3] = 0.9
    return p


def test_peak_memory_does_not_grow_with_the_raster(tmp_path: Path) -> None:
    def peak(height: int) -> int:
        prob = _write(tmp_path, _blobs(height, 1200), f"p{height}.tif")
        tracemalloc.start()
        polygonize_probability(
            prob, tmp_path / f"o{height}.gpkg", "r", 2020, smooth_m=10.0, stripe_rows=32
        )
        _, top = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        return top

    small, large = peak(200), peak(800)  # 4 x the pixels (and the blobs)
    assert large < 1.5 * small
    with rasterio.open(tmp_path / "p800.tif") as src:
        assert large < 0.5 * src.height * src.width * 4  # below one float32 copy of it


@pytest.mark.parametrize("simple", [True, False])
def test_a_grid_with_awkward_numbers_gives_the_same_coordinates(
    tmp_path: Path, simple: bool
) -> None:
    p = _noise_and_blobs(90, 70, seed=9)
    grid = RegionGrid("EPSG:32643", Affine(9.7, 0.0, 412345.678, 0.0, -9.7, 4012345.6789), 70, 90)
    prob = tmp_path / "p.tif"
    write_raster(prob, p[None].astype(np.float32), grid, ["probability"], np.nan)
    kw: dict[str, object] = {"smooth_m": 0, "min_area_km2": 0.001, "max_hole_km2": 0}
    if not simple:
        dem = tmp_path / "dem.tif"
        write_raster(dem, _two_valleys(90, 70)[None], grid, ["elevation"])
        kw["dem"] = dem
    assert _compare(tmp_path, prob, [1, 4, 13, None], **kw) >= 4


@pytest.mark.parametrize("nodata", [np.nan, -1.0, np.inf, -np.inf, None])
def test_probability_nodata_reads_as_zero(tmp_path: Path, nodata: float | None) -> None:
    from glaciermap.core.io import open_raster
    from glaciermap.products.outlines import _read_probability

    p = np.full((6, 5), 0.8, np.float32)
    p[1, 2] = np.nan
    p[3, 1] = -1.0
    if nodata is not None and np.isinf(nodata):
        p[4, 4] = nodata
    path = tmp_path / "p.tif"
    write_raster(path, p[None], _grid(6, 5), ["probability"], nodata)
    with open_raster(path) as src:
        got = _read_probability(src, 1, (slice(0, 6), slice(0, 5)))
    want = np.nan_to_num(p, nan=0.0)
    if nodata == -1.0:
        want[3, 1] = 0.0
    if nodata is not None and np.isinf(nodata):
        want[4, 4] = 0.0
    np.testing.assert_array_equal(got, want)


def test_prefetched_keeps_order_and_raises_where_due() -> None:
    from glaciermap.products.outlines_stream import prefetched

    args = [(k, k + 1) for k in range(5)]
    assert list(prefetched(lambda a, b: a * b, args)) == [(x, x[0] * x[1]) for x in args]
    assert list(prefetched(lambda a, b: a + b, args[:1])) == [((0, 1), 1)]

    def fail_at_3(a: int, b: int) -> int:
        if a == 3:
            raise OSError("unreadable block")
        return a

    got = []
    with pytest.raises(OSError, match="unreadable block"):
        for _, v in prefetched(fail_at_3, args):
            got.append(v)
    assert got == [0, 1, 2]


def test_probability_under_a_dataset_mask_reads_as_zero(tmp_path: Path) -> None:
    from glaciermap.core.io import open_raster
    from glaciermap.products.outlines import _read_probability

    p = np.full((6, 5), 0.8, np.float32)
    path = tmp_path / "p.tif"
    write_raster(path, p[None], _grid(6, 5), ["probability"], None)
    with rasterio.open(path, "r+") as dst:
        mask = np.full((6, 5), 255, np.uint8)
        mask[2, 3] = 0
        dst.write_mask(mask)
    with open_raster(path) as src:
        assert MaskFlags.per_dataset in src.mask_flag_enums[0]
        got = _read_probability(src, 1, (slice(0, 6), slice(0, 5)))
    want = p.copy()
    want[2, 3] = 0.0
    np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize("split", [False, True])
def test_outlines_are_gdals_polygons_of_the_cleaned_mask(tmp_path: Path, split: bool) -> None:
    # an independent reference: GDAL's polygonization of the cleaned mask, complex by complex
    p = _noise_and_blobs(120, 140, seed=8)
    prob = _write(tmp_path, p)
    kw = {"smooth_m": 10.0, "min_area_km2": 0.002, "max_hole_km2": 0.003}
    extra: dict[str, object] = {}
    if split:
        dem = tmp_path / "dem.tif"
        write_raster(dem, _two_valleys(120, 140)[None], _grid(120, 140), ["elevation"])
        extra["dem"] = dem
    out = tmp_path / "o.gpkg"
    polygonize_probability(prob, out, "r", 2020, stripe_rows=7, **kw, **extra)  # type: ignore[arg-type]
    complexes = gpd.read_file(out, layer="complexes")
    glaciers = gpd.read_file(out, layer="glaciers")
    mask = clean_mask(np.nan_to_num(p) >= 0.5, 10.0, **kw)
    labels, n = ndimage.label(mask)
    parts: dict[int, list[shapely.Geometry]] = {}
    for geom, value in rasterio.features.shapes(
        labels.astype(np.int32), mask=labels > 0, transform=_grid(120, 140).transform
    ):
        parts.setdefault(int(value), []).append(shapely.geometry.shape(geom))
    assert len(complexes) == n
    for k, got in enumerate(complexes.geometry, start=1):
        ref = shapely.make_valid(shapely.union_all(parts[k]))
        assert got.is_valid and got.symmetric_difference(ref).area == pytest.approx(0.0)
    assert glaciers.geometry.is_valid.all()
    assert glaciers.area.sum() == pytest.approx(mask.sum() * 100.0)
    assert (len(glaciers) > n) == split  # split along the basins, or one glacier each


def test_one_behind_calls_in_order_one_at_a_time_and_raises() -> None:
    import threading
    import time

    from glaciermap.products.outlines_stream import one_behind

    seen: list[int] = []
    busy = threading.Lock()

    def visit(k: int) -> None:
        assert busy.acquire(blocking=False)  # never two at once
        time.sleep(0.002 * (k % 3))
        seen.append(k)
        busy.release()

    with one_behind(visit) as call:  # type: ignore[arg-type]
        assert call is not None
        for k in range(12):
            call(k)  # type: ignore[arg-type]
    assert seen == list(range(12))

    def fail(k: int) -> None:
        if k == 2:
            raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        with one_behind(fail) as call:  # type: ignore[arg-type]
            assert call is not None
            for k in range(5):
                call(k)  # type: ignore[arg-type]
    with one_behind(None) as call:
        assert call is None


def test_outlines_written_in_chunks_are_byte_reproducible(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Appended chunks give the same file on every run (reruns compare by checksum)."""
    monkeypatch.setattr(outlines, "CHUNK_VERTICES", 200)
    prob = _write(tmp_path, _noise_and_blobs(80, 90, 5))
    a, b = tmp_path / "a.gpkg", tmp_path / "b.gpkg"
    written = polygonize_probability(prob, a, "r", 2020, smooth_m=0, min_area_km2=0)
    polygonize_probability(prob, b, "r", 2020, smooth_m=0, min_area_km2=0)
    assert written.glaciers > 10 and a.read_bytes() == b.read_bytes()
    assert len(gpd.read_file(a, layer="glaciers")) == written.glaciers


def _random_inventory(tmp_path: Path, height: int, width: int, seed: int) -> Path:
    """Rectangles and triangles of random sizes over part of the grid (some overlap, some
    ice stays far from all of them), several polygons sharing an id (multipart glaciers)."""
    rng = np.random.default_rng(seed)
    geoms, ids = [], []
    for k in range(40):
        r, c = rng.integers(0, height), rng.integers(0, width * 3 // 4)
        h, w = rng.integers(2, 25, 2)
        x, y = X0 + 10 * c, Y0 + 10 * (height - r)
        geoms.append(
            box(x, y - 10 * h, x + 10 * w, y)
            if k % 3
            else Polygon([(x, y), (x + 10 * w, y), (x, y - 10 * h)])
        )
        ids.append(f"g{k % 31}")
    inv = tmp_path / "inv.gpkg"
    gpd.GeoDataFrame({"RGIId": ids}, geometry=geoms, crs="EPSG:32643").to_file(inv)
    return inv


@pytest.mark.parametrize(("seed", "stripe_px"), [(0, 300), (1, 2000), (2, 45), (3, 1 << 20)])
def test_a_complex_split_in_stripes_gives_the_whole_window_result(
    tmp_path: Path, seed: int, stripe_px: int
) -> None:
    """Every complex split in row stripes of its window (as an ice cap's is): the glaciers
    of the whole-window split, bit for bit (ice far from the inventory, small pieces merged
    across stripe seams, parts of one glacier, other patches in the complex's box)."""
    height, width = 120, 160
    field = _noise_and_blobs(height, width, seed)
    prob = _write(tmp_path, np.where(np.isnan(field), np.nan, field + 0.15))  # ~50 % ice
    kw: dict[str, object] = {
        "inventory": _random_inventory(tmp_path, height, width, seed),
        "min_area_km2": 0.003,
        "smooth_m": 10.0,
        "max_hole_km2": 0.002,
        "max_inventory_distance_m": 80.0,
    }
    ref = tmp_path / "ref.gpkg"
    _polygonize_in_memory(prob, ref, "r", 2020, **kw)  # type: ignore[arg-type]
    calls: list[int] = []
    split_in_stripes = outlines.split_in_stripes

    def counted(*args: object, **kwargs: object) -> object:
        calls.append(1)
        return split_in_stripes(*args, **kwargs)  # type: ignore[arg-type]

    out = tmp_path / "striped.gpkg"
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(outlines, "SPLIT_WINDOW_PX", 0)
        mp.setattr(outlines, "split_in_stripes", counted)
        mp.setattr(split, "STRIPE_PIXELS", stripe_px)
        polygonize_probability(prob, out, "r", 2020, stripe_rows=13, **kw)  # type: ignore[arg-type]
    n = _same_outlines(ref, out)
    glaciers = gpd.read_file(out, layer="glaciers")
    assert len(calls) == len(gpd.read_file(out, layer="complexes")) >= 2
    assert glaciers["inventory_id"].isna().any() and glaciers["inventory_id"].notna().any()
    assert glaciers["complex_id"].value_counts().max() >= 5 and n >= 10
    assert not list(tmp_path.glob("tmp*"))  # the pieces' temporary file is gone


@pytest.mark.parametrize("window_px", [0, 1 << 40])
def test_an_ice_cap_splits_in_memory_that_does_not_grow_with_it(
    tmp_path: Path, window_px: int
) -> None:
    """One complex (an ice cap) over many inventory glaciers, split in stripes: 4 x its
    height, about the same peak; split in one window (``window_px`` above it), 4 x."""
    width = 240

    def peak(height: int) -> tuple[int, int]:
        p = np.zeros((height, width), np.float32)
        p[5:-5, 5:-5] = 0.9
        prob = _write(tmp_path, p, f"p{height}.tif")
        cells = [
            box(X0 + 10 * c, Y0 + 10 * (r - 40), X0 + 10 * (c + 37), Y0 + 10 * r)
            for r in range(40, height + 1, 40)
            for c in range(0, width, 40)
        ]
        inv = tmp_path / f"inv{height}.gpkg"
        ids = [f"g{k}" for k in range(len(cells))]
        gpd.GeoDataFrame({"RGIId": ids}, geometry=cells, crs="EPSG:32643").to_file(inv)
        out = tmp_path / f"o{height}.gpkg"
        with pytest.MonkeyPatch.context() as mp:
            mp.setattr(outlines, "SPLIT_WINDOW_PX", window_px)
            mp.setattr(split, "STRIPE_PIXELS", 40 * width)
            tracemalloc.start()
            polygonize_probability(prob, out, "r", 2020, inventory=inv, stripe_rows=32)
            _, top = tracemalloc.get_traced_memory()
            tracemalloc.stop()
        assert len(gpd.read_file(out, layer="complexes")) == 1
        return top, len(gpd.read_file(out, layer="glaciers"))

    (small, n_small), (large, n_large) = peak(600), peak(2400)
    assert n_large > 3 * n_small
    assert (large < 1.5 * small) == (window_px == 0)


def _basin_case(tmp_path: Path) -> tuple[Path, dict[str, object]]:
    height, width = 100, 200
    p = np.zeros((height, width), np.float32)
    p[10:90, 20:180] = 0.9  # one complex over two valleys
    p[30:40, 60:70] = 0.0  # a hole
    p[60:62, 100:150] = 0.0  # and a gash: other patches in the box, parts
    p = np.maximum(p, np.where(_noise_and_blobs(height, width, 3) > 0.8, 0.7, 0.0))
    prob = _write(tmp_path, p)
    dem = tmp_path / "dem.tif"
    write_raster(dem, _two_valleys(height, width)[None], _grid(height, width), ["elevation"])
    return prob, {"min_area_km2": 0.005, "dem": dem}


def test_basins_split_in_stripes_at_full_resolution_give_the_whole_window_result(
    tmp_path: Path,
) -> None:
    """Split along basins in stripes, with cells of one pixel (a box within the cap): the
    whole-window watershed's glaciers, bit for bit."""
    prob, kw = _basin_case(tmp_path)
    ref = tmp_path / "ref.gpkg"
    _polygonize_in_memory(prob, ref, "r", 2020, **kw)  # type: ignore[arg-type]
    out = tmp_path / "striped.gpkg"
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(outlines, "BASIN_WINDOW_PX", 0)  # every complex in stripes, cells of 1 px
        mp.setattr(split, "STRIPE_PIXELS", 7 * 200)
        polygonize_probability(prob, out, "r", 2020, stripe_rows=9, **kw)  # type: ignore[arg-type]
    assert _same_outlines(ref, out) >= 4
    assert gpd.read_file(out, layer="glaciers")["complex_id"].value_counts().max() >= 2


@pytest.mark.parametrize("cells", [1500, 400])
def test_basins_of_an_ice_cap_too_large_for_one_window_follow_coarse_cells(
    tmp_path: Path, cells: int
) -> None:
    """Above the window size, basins come from cells of f x f pixels: glaciers tile the
    complex exactly (areas add up), and match the full-resolution split closely."""
    prob, kw = _basin_case(tmp_path)
    ref = tmp_path / "ref.gpkg"
    _polygonize_in_memory(prob, ref, "r", 2020, **kw)  # type: ignore[arg-type]
    out = tmp_path / "coarse.gpkg"
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(outlines, "BASIN_WINDOW_PX", 0)
        mp.setattr(split, "BASIN_WINDOW_PX", cells)  # 81 x 161 px box: f = 3 or 6
        polygonize_probability(prob, out, "r", 2020, **kw)  # type: ignore[arg-type]
    glaciers, complexes = (gpd.read_file(out, layer=k) for k in ("glaciers", "complexes"))
    exact = gpd.read_file(ref, layer="glaciers")
    assert glaciers.is_valid.all()
    assert glaciers.area.sum() == pytest.approx(complexes.area.sum(), rel=1e-12)
    assert complexes.area.sum() == pytest.approx(exact.area.sum(), rel=1e-12)
    big = exact["complex_id"].value_counts().idxmax()
    ours = glaciers[glaciers["complex_id"] == big].geometry.values
    assert len(ours) >= 2  # still split
    for g in exact[exact["complex_id"] == big].geometry.values:  # each basin found again
        iou = max(g.intersection(o).area / g.union(o).area for o in ours)
        assert iou > 0.8
