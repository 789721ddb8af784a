"""From a probability raster to glacier outlines: glacier complexes split into glaciers.

Steps: threshold; morphological opening then closing with a disk of about ``smooth_m``
metres radius (removes speckle and closes gaps narrower than about ``2 * smooth_m``, see
:func:`clean_mask`); removal of patches smaller than ``min_area_km2``; filling of holes
smaller than ``max_hole_km2``. Each connected patch is a glacier *complex*. Each complex is
then split into *glaciers*:

- with an inventory (RGI/GLIMS): along the inventory's ice divides. Every predicted pixel
  goes to the nearest inventory glacier (Euclidean distance on the grid, 0 inside it); ice
  farther than ``max_inventory_distance_m`` from any inventory glacier forms pieces of its
  own (one per connected part, ``inventory_id`` None: ice the inventory does not have);
- else with a DEM: along drainage basins, a watershed of the elevation inside the complex
  from its outlets (elevation minima on the complex edge, at least ``BASIN_RELIEF_M`` deep);
  interior pits (DEM noise, hummocky debris cover) are flooded from the basin around them;
- else not at all (glaciers = complexes).

Pieces smaller than ``min_area_km2`` are merged into the neighbour they share the longest
border with. Glaciers are vectorised from the same raster as the complexes and tile them
exactly; a complex's geometry is the union of its glaciers', so areas add up, also after
``simplify_m``: the glaciers are simplified together as one coverage (shapely
``coverage_simplify``, Visvalingam-Whyatt with a tolerance of about the square root of the
triangle areas removed, in metres), so shared borders stay shared, without gaps or overlaps.

Output GeoPackage layers (one file, renamed into place when complete): ``glaciers`` (the
first, default, layer; ``MultiPolygon`` where complexes are split, else ``Polygon``) and
``complexes`` (``Polygon``; with ``simplify_m`` the types follow the data), each with
``glacier_id, area_km2, perimeter_km, mean_probability, region, year, sensor,
acquisition_dates, inventory_id, complex_id``. In ``glaciers``,
``inventory_id`` is the inventory glacier the polygon belongs to; in ``complexes``,
``glacier_id`` equals ``complex_id`` and ``inventory_id`` is the inventory glacier with the
largest overlap (None without overlap). Areas and lengths are in the grid CRS (metres).

:func:`polygonize_probability` runs in bounded memory with the result of the whole-array
steps (:func:`_polygonize_in_memory`, kept as the reference): the clean-up and the
labelling of the complexes go through the raster in row stripes
(:mod:`glaciermap.products.outlines_stream`); complexes that are one glacier each (no
inventory, no DEM) are traced while the stripes are labelled (each stripe adds the pixel
corners where outlines turn, :mod:`glaciermap.products.trace`; a complex's rings are joined,
and it is written, once no later stripe can reach it and its number is known); otherwise
each complex is split and vectorised in the window of its bounding box grown by the
inventory reach, and a complex whose window is larger than
:data:`~glaciermap.products.split.SPLIT_WINDOW_PX` (an ice cap, an icefield; by drainage
basins :data:`~glaciermap.products.split.BASIN_WINDOW_PX`) in row stripes of that window
(:func:`~glaciermap.products.split.split_in_stripes`: by the inventory the same glaciers; by
drainage basins, basins of the DEM on cells of ``f x f`` pixels that bring the box to that
size, see :class:`~glaciermap.products.split.BasinKeys`). Memory: a stripe,
a split window up to that size, O(number of patches), the outline vertices of complexes still
growing, one chunk of the output (written in chunks of whole complexes, ids counting on, by
:class:`~glaciermap.core.gpkg.GeoPackageWriter`, without GDAL's vector stack).
"""

from __future__ import annotations

import contextlib
import itertools
import logging
import math
from collections.abc import Callable, Sequence
from dataclasses import astuple, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import rasterio.features
import rasterio.io
import shapely
from affine import Affine
from numpy.typing import NDArray
from rasterio.enums import MaskFlags
from rasterio.windows import Window
from scipy import ndimage

from glaciermap.core.errors import InputDataError
from glaciermap.core.gpkg import GeoPackageWriter, geopackage
from glaciermap.core.grid import RegionGrid, check_same_grid, grid_of
from glaciermap.core.io import PathLike, gdal_cache, open_raster, read_bands
from glaciermap.products.outlines_stream import (
    STRIPE_PIXELS,
    CompleteComponents,
    Complexes,
    PackedMask,
    Stripe,
    final_pass_min_px,
    stream_complexes,
)
from glaciermap.products.split import (
    BASIN_WINDOW_PX,
    SPLIT_WINDOW_PX,
    BasinKeys,
    InventoryKeys,
    edge_pairs,
    merge_small,
    merged_codes,
    nearest_code,
    split_by_basins,
    split_in_stripes,
)
from glaciermap.products.trace import (
    CHUNK_VERTICES,
    RING_COST,
    RingTracer,
    trace_labels,
    trace_pieces,
)

log = logging.getLogger(__name__)

COLUMNS = [
    "glacier_id",
    "area_km2",
    "perimeter_km",
    "mean_probability",
    "region",
    "year",
    "sensor",
    "acquisition_dates",
    "inventory_id",
    "complex_id",
]
COLUMN_TYPES = ["TEXT", "REAL", "REAL", "REAL", "TEXT", "INTEGER", "TEXT", "TEXT", "TEXT", "TEXT"]
LAYERS = ("glaciers", "complexes")
TAKE_VERTICES = 1 << 17
"""Outline vertices held (~18 bytes each) before the complete complexes are traced (~80
bytes per vertex while joined): 2.4 MB held, ~10 MB joining, and a pass over what is held
each time; it grows to twice what stays where large complexes span many stripes."""
GDAL_CACHE_BYTES = 32 << 20  # GDAL's block cache while reading, at most (default: 5 % of the RAM)

Slices = tuple[slice, slice]


def disk(radius_px: int) -> NDArray[np.bool_]:
    """Disk-shaped structuring element: pixels whose centre lies within ``radius_px``."""
    y, x = np.ogrid[-radius_px : radius_px + 1, -radius_px : radius_px + 1]
    return np.asarray(x * x + y * y <= radius_px * radius_px)


def smoothing_radius_px(smooth_m: float, pixel_size_m: float) -> int:
    """Disk radius (pixels) for ``smooth_m``: ``smooth_m / pixel_size`` rounded half up, at
    least 1 pixel for any ``smooth_m > 0`` (0 for ``smooth_m == 0``)."""
    if smooth_m <= 0:
        return 0
    return max(1, math.floor(smooth_m / pixel_size_m + 0.5))


def clean_mask(
    mask: NDArray[np.bool_],
    pixel_size_m: float,
    smooth_m: float = 30.0,
    min_area_km2: float = 0.01,
    max_hole_km2: float = 0.01,
) -> NDArray[np.bool_]:
    """Morphological clean-up of a binary glacier mask on a grid of ``pixel_size_m``.

    Opening then closing with a disk of radius ``r = smoothing_radius_px(smooth_m, pixel)``
    pixels: a disk of ``2r + 1`` pixels does not fit into a strip ``2r`` pixels wide, so
    opening removes ice features (speckle, spurs) and closing fills gaps (crevasse or shadow
    lines, rock ribs) up to ``2r`` pixels, i.e. about ``2 * smooth_m`` metres, wide. Both are
    exact when ``smooth_m`` is a multiple of the pixel size.

    The default ``smooth_m = 30`` is a multiple of both real resolutions and acts the same on
    them: r = 3 px on 10 m Sentinel-2, r = 1 px on 30 m Landsat; both remove and close
    features up to 60 m wide. That is the scale of the mixed pixels of a 30 m scene and of
    the 20 m SWIR bands resampled to 10 m, and below the mapping scale of glacier inventories
    (the smallest mapped glacier, 0.01 km2, is 100 m across), so real glaciers and tongues
    wider than 60 m are kept. ``smooth_m = 0`` switches the smoothing off; any positive value
    smooths with at least a 1-pixel disk (a 30 m grid is never left unsmoothed).

    Beyond the raster edge the mask is taken to continue as at the edge (``mode="nearest"``),
    so ice touching the edge is not eroded there and gaps reaching it close as inside. Then
    patches under ``min_area_km2`` are removed and holes under ``max_hole_km2`` filled (both
    in km2, whatever the pixel size).
    """
    pixel_area_m2 = pixel_size_m**2
    m = np.asarray(mask, dtype=bool).copy()
    r = smoothing_radius_px(smooth_m, pixel_size_m)
    if r > 0:
        m = _smooth(m, r)
    min_px = min_area_km2 * 1e6 / pixel_area_m2
    labels, n = ndimage.label(m)
    if n:
        sizes = np.bincount(labels.ravel())
        small = sizes < min_px
        small[0] = False
        m &= ~small[labels]
    holes = ndimage.binary_fill_holes(m) & ~m
    hl, hn = ndimage.label(holes)
    if hn:
        hsizes = np.bincount(hl.ravel())
        fill = hsizes < max_hole_km2 * 1e6 / pixel_area_m2
        fill[0] = False
        m |= fill[hl]
    return np.asarray(m)


def _smooth(mask: NDArray[np.bool_], r: int) -> NDArray[np.bool_]:
    """Opening then closing with a disk of radius ``r``, the mask continued beyond its edge as
    at the edge; a pixel depends on the mask within ``4 * r`` rows and columns of it."""
    se, u8 = disk(r), mask.astype(np.uint8)
    u8 = ndimage.grey_opening(u8, footprint=se, mode="nearest")
    return np.asarray(ndimage.grey_closing(u8, footprint=se, mode="nearest") > 0)


def _grow(sl: Slices, pad: int, shape: tuple[int, int]) -> Slices:
    return (
        slice(max(0, sl[0].start - pad), min(shape[0], sl[0].stop + pad)),
        slice(max(0, sl[1].start - pad), min(shape[1], sl[1].stop + pad)),
    )


def _merge_small(pieces: NDArray[np.int32], min_px: float) -> NDArray[np.int32]:
    """Merge pieces (labels > 0 of one complex) under ``min_px`` pixels into the neighbour
    they share the longest border with, smallest first; relabelled 1..n (:func:`merge_small`)."""
    n = int(pieces.max())
    if n <= 1:
        return pieces
    size = np.bincount(pieces.ravel(), minlength=n + 1).astype(np.int64)
    relabel = merge_small(size, edge_pairs(pieces), min_px)
    return np.asarray(relabel[pieces], dtype=np.int32)


def _split_by_inventory(
    inside: NDArray[np.bool_], inv: NDArray[np.int32], max_px: float
) -> tuple[NDArray[np.int32], list[int]]:
    """Pieces of one complex (``inside``) by nearest inventory glacier; their inventory
    codes (0 = farther than ``max_px`` from any inventory glacier)."""
    codes = inv[inside]
    if codes.size and codes.min() > 0 and codes.min() == codes.max():
        return inside.astype(np.int32), [int(codes[0])]
    nearest = nearest_code(inv, max_px)
    nearest[~inside] = -1
    found = np.unique(nearest[inside])
    pos = found[found > 0]
    nfar, far = 0, None
    if len(found) and found[0] == 0:  # ice far from the inventory: one piece per part
        far, nfar = ndimage.label(nearest == 0)
    lut = np.zeros(int(found.max(initial=0)) + 2, np.int32)  # code + 1 -> piece
    lut[pos + 1] = np.arange(nfar + 1, nfar + len(pos) + 1, dtype=np.int32)
    pieces = lut[nearest + 1]
    if far is not None:
        pieces[far > 0] = far[far > 0]
    return pieces, [0] * nfar + pos.tolist()


def split_complexes(
    complexes: NDArray[np.int32],
    pixel_size_m: float,
    min_area_km2: float,
    inventory_codes: NDArray[np.int32] | None = None,
    elevation: NDArray[np.float32] | None = None,
    max_inventory_distance_m: float = 1000.0,
) -> tuple[NDArray[np.int32], NDArray[np.int64], NDArray[np.int64]]:
    """Glacier labels (1..n) tiling the complexes (labels 1..m), and for each glacier its
    complex label and inventory code (0: none). See the module docstring."""
    min_px = min_area_km2 * 1e6 / pixel_size_m**2
    pad = 0
    if inventory_codes is not None:  # the window must hold every glacier within reach
        pad = math.ceil(min(float(max(complexes.shape)), max_inventory_distance_m / pixel_size_m))
    glaciers = np.zeros(complexes.shape, np.int32)
    of_complex: list[int] = []
    owner: list[int] = []
    for c, sl in enumerate(ndimage.find_objects(complexes), start=1):
        if sl is None:
            continue
        win = _grow(sl, pad, complexes.shape)
        inside = complexes[win] == c
        merged, codes = _split_one(
            inside,
            None if inventory_codes is None else inventory_codes[win],
            None if elevation is None else elevation[win],
            pixel_size_m,
            min_px,
            max_inventory_distance_m,
        )
        out = glaciers[win]
        out[inside] = merged[inside] + len(of_complex)
        of_complex += [c] * len(codes)
        owner += codes
    return glaciers, np.asarray(of_complex, np.int64), np.asarray(owner, np.int64)


def _split_one(
    inside: NDArray[np.bool_],
    inventory_codes: NDArray[np.int32] | None,
    elevation: NDArray[np.float32] | None,
    pixel_size_m: float,
    min_px: float,
    max_inventory_distance_m: float,
) -> tuple[NDArray[np.int32], list[int]]:
    """Glaciers (labels 1..n, 0 outside) of one complex (``inside``, in a window holding
    every inventory glacier within reach), and their inventory codes (0: none)."""
    codes: list[int] = []
    if inventory_codes is not None:
        pieces, codes = _split_by_inventory(
            inside, inventory_codes, max_inventory_distance_m / pixel_size_m
        )
    elif elevation is not None:
        pieces = split_by_basins(inside, elevation)
    else:
        pieces = inside.astype(np.int32)
    merged = _merge_small(pieces, min_px)
    n = int(merged.max())
    if codes:  # a merged piece keeps the code of its largest member
        sizes = np.bincount(pieces[inside], minlength=len(codes) + 1)
        into = np.zeros(len(codes) + 1, np.int64)  # piece -> merged piece (whole pieces merge)
        into[pieces[inside]] = merged[inside]
        codes = merged_codes(into, sizes, codes)
    return merged, codes or [0] * n


def _inventory_codes(inventory: PathLike, grid: RegionGrid) -> tuple[NDArray[np.int32], list[str]]:
    """Inventory glaciers rasterized on the grid (code k+1 = ``ids[k]``, 0 = none)."""
    inv = _InventoryRaster(inventory, grid)
    return inv.rasterize((slice(0, grid.height), slice(0, grid.width))), inv.ids


class _InventoryRaster:
    """Inventory glaciers (code k+1 = ``ids[k]``), rasterized on windows of the grid as on
    the whole grid: the same polygons in the same (burn) order, the window's transform."""

    def __init__(self, inventory: PathLike, grid: RegionGrid):
        import pandas as pd  # imported when needed: pandas and geopandas take ~60 MB

        from glaciermap.ingest.labels import read_inventory

        inv = read_inventory(inventory, grid.crs, grid.bounds)  # windows stay on the grid
        codes, ids = pd.factorize(inv["inventory_id"])
        self.ids = [str(i) for i in ids]
        self.grid = grid
        self.geoms = np.asarray(inv.geometry.values, dtype=object)
        self.values = (np.asarray(codes) + 1).tolist()
        self.tree = shapely.STRtree(self.geoms)

    def rasterize(self, win: Slices) -> NDArray[np.int32]:
        """Codes on the window ``win`` of the grid."""
        shape = (win[0].stop - win[0].start, win[1].stop - win[1].start)
        transform = _window_transform(self.grid.transform, win)
        corners = [transform.c, transform.c + transform.a * shape[1]]
        ys = [transform.f, transform.f + transform.e * shape[0]]
        px = self.grid.resolution  # a pixel of margin: the query only narrows the list
        query = shapely.box(min(corners) - px, min(ys) - px, max(corners) + px, max(ys) + px)
        hits = np.sort(self.tree.query(query))
        if not len(hits):
            return np.zeros(shape, np.int32)
        raster = rasterio.features.rasterize(
            [(self.geoms[i], self.values[i]) for i in hits.tolist()],
            out_shape=shape,
            transform=transform,
            fill=0,
            dtype="int32",
            all_touched=False,
        )
        return np.asarray(raster, np.int32)

    def any_on_grid(self, stripe_rows: int) -> bool:
        """Whether a glacier covers a pixel (centre) of the grid, checked stripe by stripe
        over the part of the grid the inventory's extent covers."""
        grid = self.grid
        hits = self.tree.query(shapely.box(*grid.bounds))
        if not len(hits):
            return False
        left, bottom, right, top = shapely.total_bounds(self.geoms[hits])
        t = grid.transform  # north-up: no rotation terms
        cols = sorted([(left - t.c) / t.a, (right - t.c) / t.a])
        rows = sorted([(top - t.f) / t.e, (bottom - t.f) / t.e])
        c0, c1 = max(0, math.floor(cols[0]) - 1), min(grid.width, math.ceil(cols[1]) + 1)
        r0, r1 = max(0, math.floor(rows[0]) - 1), min(grid.height, math.ceil(rows[1]) + 1)
        step = max(1, stripe_rows * grid.width // max(1, c1 - c0))
        return any(
            self.rasterize((slice(a, min(r1, a + step)), slice(c0, c1))).any()
            for a in range(r0, r1, step)
        )


def _window_transform(transform: Affine, win: Slices) -> Affine:
    """The transform of the window ``win`` of a north-up grid with ``transform``."""
    r0, c0 = win[0].start, win[1].start
    t = transform
    return Affine(t.a, t.b, t.c + c0 * t.a + r0 * t.b, t.d, t.e, t.f + c0 * t.d + r0 * t.e)


def _band(src: rasterio.io.DatasetReader, name: str) -> int:
    """The index (1-based) of the band called ``name``, as :func:`read_bands` finds it."""
    names = [d or f"band{i + 1}" for i, d in enumerate(src.descriptions)]
    if name not in names:
        raise InputDataError(f"{src.name}: has no band(s) {[name]}; it has {names}")
    return names.index(name) + 1


def _read(src: rasterio.io.DatasetReader, band: int, win: Slices) -> NDArray[np.float32]:
    """A window of a band as float32, nodata -> NaN (as :func:`read_bands` reads it)."""
    window = Window(
        win[1].start, win[0].start, win[1].stop - win[1].start, win[0].stop - win[0].start
    )
    data = src.read(band, window=window, masked=True)
    out = np.asarray(data.data).astype(np.float32, copy=False)
    mask = np.ma.getmask(data)
    if mask is not np.ma.nomask:
        out[mask] = np.nan
    return out


def _read_probability(
    src: rasterio.io.DatasetReader, band: int, win: Slices
) -> NDArray[np.float32]:
    """:func:`_read` then ``np.nan_to_num(nan=0)`` (nodata -> 0), with fewer passes: where
    the band's only mask is its nodata value (or none), without a masked read."""
    window = Window(
        win[1].start, win[0].start, win[1].stop - win[1].start, win[0].stop - win[0].start
    )
    flags = set(src.mask_flag_enums[band - 1])
    plain = flags <= {MaskFlags.nodata, MaskFlags.all_valid}
    data = src.read(band, window=window, masked=not plain)
    nodata = src.nodatavals[band - 1]
    bad = None  # before nan_to_num, which may change ``data`` itself (an inf nodata)
    if plain and nodata is not None and not math.isnan(nodata):
        bad = np.asarray(np.ma.getdata(data)) == nodata
    out = np.asarray(np.ma.getdata(data)).astype(np.float32, copy=False)
    if not np.isfinite(out).all():
        out = np.nan_to_num(out, copy=False, nan=0.0)
    if bad is not None:
        np.copyto(out, np.float32(0.0), where=bad)
    mask = np.ma.getmask(data)
    if mask is not np.ma.nomask:
        np.copyto(out, np.float32(0.0), where=mask)
    return out


@dataclass
class _Outlines:
    """Glaciers (geometry, complex 1.., inventory code, mean probability) and complexes
    (mean probability, largest-overlap inventory code), in output order."""

    geoms: list[shapely.Geometry] = field(default_factory=list)
    of_complex: list[int] = field(default_factory=list)
    owner: list[int] = field(default_factory=list)
    mean_p: list[float] = field(default_factory=list)
    complex_mean_p: list[float] = field(default_factory=list)
    complex_owner: list[int] = field(default_factory=list)

    def add(
        self,
        complex_no: int,
        geoms: list[shapely.Geometry],
        owners: list[int],
        mean_p: list[float],
        complex_mean_p: float,
        complex_owner: int,
    ) -> None:
        """Append complex ``complex_no`` (1..) and its glaciers."""
        self.geoms += geoms
        self.of_complex += [complex_no] * len(geoms)
        self.owner += owners
        self.mean_p += mean_p
        self.complex_mean_p.append(complex_mean_p)
        self.complex_owner.append(complex_owner)


class _SingleGlaciers:
    """Outlines and mean probabilities of complexes that are one glacier each (no inventory,
    no DEM), written while the stripes are labelled (:meth:`visit`): each stripe adds its
    outline corners (:class:`~glaciermap.products.trace.RingTracer`), per-piece probability
    sums and joins (:class:`~glaciermap.products.outlines_stream.CompleteComponents`); once
    the corners held reach ``take_vertices`` (and twice what stayed the time before), the
    complexes that are complete and numbered are traced and handed to ``emit`` (number
    0, 1, ..., polygon, mean probability) in order. So memory holds no pixels beyond the
    stripes in flight and no outlines beyond those of complexes still growing (or waiting
    for an earlier one that is), the same whatever the stripes. :meth:`finish` traces the
    rest and checks the numbering against the labelling's."""

    def __init__(
        self,
        shape: tuple[int, int],
        transform: Affine,
        prob: Callable[[Slices], NDArray[np.float32]],
        min_px: float,
        emit: Callable[[int, shapely.Geometry, float], None],
        take_vertices: int | None = None,
    ):
        self.shape = shape
        self.transform = transform
        self.prob = prob
        self.emit = emit
        self.tracer = RingTracer(shape)
        self.parts = CompleteComponents(min_px)
        self.take_vertices = TAKE_VERTICES if take_vertices is None else take_vertices
        self._take_at = self.take_vertices
        self.emitted = 0

    def visit(self, st: Stripe) -> None:
        """A stripe of the final labelling (see :class:`Stripe`)."""
        lab, r0 = st.labels, st.r0
        ice = lab > 0
        self.tracer.add(r0, lab, st.base, ice)
        k = int(st.stats.shape[0])
        sums: NDArray[np.float64] = np.zeros(0)
        if k:
            p = st.probability
            if p is None:
                p = self.prob((slice(r0, r0 + lab.shape[0]), slice(0, lab.shape[1])))
            sums = np.bincount(lab[ice], weights=p[ice], minlength=k + 1)[1:].astype(np.float64)
        last = None
        if r0 + lab.shape[0] < self.shape[0]:
            row = lab[-1]
            last = row[row > 0].astype(np.int64) + (st.base - 1)
        self.parts.add(st.base, st.stats[:, 0], sums, st.pairs, last)
        if self.tracer.pending >= self._take_at:
            self._take()
            self._take_at = max(self.take_vertices, 2 * self.tracer.pending)

    def _take(self) -> None:
        chunks = self.tracer.take_chunks(
            self.parts.status, self.transform, (0, 0), self.take_vertices
        )
        for comps, polys in chunks:
            if not np.array_equal(comps, np.arange(self.emitted, self.emitted + len(comps))):
                raise AssertionError("complexes traced out of order")
            for c, poly in zip(comps.tolist(), polys, strict=True):
                self.emit(c, poly, float(self.parts.mean[c]))
            self.emitted += len(comps)

    def finish(self, found: Complexes) -> None:
        """Trace and emit the complexes left; check them against ``found``."""
        self._take()
        n = len(found.comps)
        if self.tracer.pending or self.emitted != n or self.parts.count != n:
            raise AssertionError("a complex without an outline, or outlines left")
        if not np.array_equal(self.parts.size[:n], found.comps.size):
            raise AssertionError("complexes numbered unlike the labelling")


def polygonize_probability(
    probability: PathLike,
    dest: PathLike,
    region: str,
    year: int,
    threshold: float = 0.5,
    smooth_m: float = 30.0,
    min_area_km2: float = 0.01,
    max_hole_km2: float = 0.01,
    simplify_m: float = 0.0,
    sensor: str = "",
    acquisition_dates: Sequence[str] = (),
    inventory: PathLike | None = None,
    dem: PathLike | None = None,
    max_inventory_distance_m: float = 1000.0,
    stripe_rows: int | None = None,
) -> OutlinesWritten:
    """Write glacier outlines (GeoPackage layers :data:`LAYERS`); how many and their area.

    ``smooth_m``, ``min_area_km2``, ``max_hole_km2``: see :func:`clean_mask`. ``simplify_m``:
    coverage simplification tolerance in metres (0: the exact pixel outlines). ``inventory``:
    polygons whose ice divides split the complexes; ice farther than
    ``max_inventory_distance_m`` from all of them has no ``inventory_id``. ``dem``: a raster
    on the probability's grid with an ``elevation`` band, used to split the complexes along
    drainage basins when there is no inventory (or it has no glacier on the grid).

    Runs in bounded memory, with the same result as on the whole arrays (same polygons,
    bit for bit, same attributes, means up to rounding): the clean-up and the labelling of
    the complexes go through the raster in stripes of ``stripe_rows`` rows (default: about
    :data:`~glaciermap.products.outlines_stream.STRIPE_PIXELS` pixels, half that where the
    complexes are traced while labelled, as three stripes are in flight then, without
    smoothing, and at least ``4 * halo`` rows; the smoothing reads ``halo = 4 * r`` more
    rows on each side), the masks in between in an anonymous, bit-packed temporary file
    (1 bit per pixel) beside ``dest`` (only where a later pass reads them).
    Complexes that are one glacier each (no inventory, no DEM) are traced during the last
    labelling pass (:class:`~glaciermap.products.trace.RingTracer`: a few integers per
    outline vertex) and written as soon as they are complete (:class:`_SingleGlaciers`);
    otherwise each complex is split and vectorised in the window of its
    bounding box grown by the inventory reach (``max_inventory_distance_m``), the inventory
    rasterized on that window only; a window larger than
    :data:`~glaciermap.products.split.SPLIT_WINDOW_PX` (by drainage basins
    :data:`~glaciermap.products.split.BASIN_WINDOW_PX`) is split in row stripes
    (:func:`~glaciermap.products.split.split_in_stripes`; by the DEM on cells of ``f x f``
    pixels). Memory is thus three stripes (one read ahead, one labelled, one traced, each
    in its own thread), plus a split window of at most that size, plus O(number of
    patches) for their sizes and boxes, plus the outline vertices of the complexes still
    growing (a few integers each); the polygons are built and written in chunks of whole complexes
    (:class:`_OutlineWriter`; all at once with ``simplify_m``, a coverage operation).
    GDAL's block cache is held to :func:`_cache_bytes` meanwhile.
    """
    grid = grid_of(probability)
    shape_ = grid.shape
    px = grid.resolution
    r = smoothing_radius_px(smooth_m, px)
    min_px = min_area_km2 * 1e6 / px**2
    max_hole_px = max_hole_km2 * 1e6 / px**2
    halo = 4 * r  # opening then closing: erosion and dilation twice, r rows each
    inv = None if inventory is None else _InventoryRaster(inventory, grid)
    inv_ids = [] if inv is None else inv.ids
    if inv is not None and not inv.any_on_grid(_stripe_rows(grid.width, halo, STRIPE_PIXELS)):
        inv = None  # no inventory glacier on the grid: split by the DEM if there is one
    if inv is None and dem is not None:
        check_same_grid(grid, dem)
    pad = 0
    if inv is not None:  # the window must hold every glacier within reach
        pad = math.ceil(min(float(max(shape_)), max_inventory_distance_m / px))
    Path(dest).parent.mkdir(parents=True, exist_ok=True)
    with contextlib.ExitStack() as stack:
        gpkg = stack.enter_context(geopackage(dest, grid.rio_crs))  # renamed last, on success
        src = stack.enter_context(open_raster(probability))
        band = _band(src, "probability")
        z_src = None
        if inv is None and dem is not None:
            z_src = stack.enter_context(open_raster(dem))
            z_band = _band(z_src, "elevation")
        stack.enter_context(gdal_cache(_cache_bytes(src, z_src) / (1 << 20)))
        single = inv is None and z_src is None  # glaciers = complexes: traced in stripes
        if stripe_rows is None:  # traced: three stripes in flight (read, labelled, traced);
            # halved where no halo is read again (with one, smaller stripes cost time)
            half = single and halo == 0
            stripe_rows = _stripe_rows(grid.width, halo, STRIPE_PIXELS // (2 if half else 1))
        store = None  # the final mask, kept for the holes' pass and the complexes' windows
        if not single or max_hole_px > 1:
            store = stack.enter_context(PackedMask(shape_, Path(dest).parent))

        def prob(win: Slices) -> NDArray[np.float32]:
            return _read_probability(src, band, win)

        def rows(a: int, b: int) -> NDArray[np.float32]:
            return prob((slice(a, b), slice(0, grid.width)))

        def smooth(m: NDArray[np.bool_]) -> NDArray[np.bool_]:
            return _smooth(m, r)

        split = inv is not None or z_src is not None
        out = _OutlineWriter(
            gpkg, inv_ids, region, year, sensor, acquisition_dates, simplify_m, grid, split
        )
        tracer = None
        if single:  # complexes = glaciers: traced and written as they are complete

            def emit(c: int, geom: shapely.Geometry, mean_p: float) -> None:
                out.add(c + 1, [geom], [0], [mean_p], mean_p, 0)

            left_out = final_pass_min_px(min_px, max_hole_px)
            tracer = _SingleGlaciers(shape_, grid.transform, prob, left_out, emit)
        found = stream_complexes(
            rows,
            shape_,
            threshold,
            smooth if r > 0 else None,
            halo,
            min_px,
            max_hole_px,
            store,
            stripe_rows,
            None if tracer is None else tracer.visit,
            boxes=tracer is None,
        )
        comps = found.comps
        if tracer is not None:
            tracer.finish(found)
            return out.finish()
        for c in range(len(comps)):
            box = (
                slice(int(comps.row0[c]), int(comps.row1[c])),
                slice(int(comps.col0[c]), int(comps.col1[c])),
            )
            assert store is not None
            win = _grow(box, pad, shape_)
            win_px = (win[0].stop - win[0].start) * (win[1].stop - win[1].start)
            if win_px > (SPLIT_WINDOW_PX if inv is not None else BASIN_WINDOW_PX):  # in stripes
                source: InventoryKeys | BasinKeys
                if inv is not None:
                    source = InventoryKeys(
                        inv.rasterize, shape_, box, pad, max_inventory_distance_m / px
                    )
                else:
                    assert z_src is not None  # a split without inventory is by the DEM

                    def elevation(w: Slices) -> NDArray[np.float32]:
                        return _read(z_src, z_band, w)

                    source = BasinKeys(elevation, box)
                s = split_in_stripes(
                    store,
                    box,
                    (int(comps.seed_row[c]), int(comps.seed_col[c])),
                    int(comps.size[c]),
                    source,
                    prob,
                    min_px,
                    grid.transform,
                    Path(dest).parent,
                )
                out.add(c + 1, s.geoms, s.codes, s.mean_p, s.complex_mean_p, s.complex_code)
                continue
            m = store.read_window(*box)
            if int(np.count_nonzero(m)) != comps.size[c]:  # other patches in the box
                lab, _ = ndimage.label(m)
                m = lab == lab[comps.seed_row[c] - box[0].start, comps.seed_col[c] - box[1].start]
            inner = (
                slice(box[0].start - win[0].start, box[0].stop - win[0].start),
                slice(box[1].start - win[1].start, box[1].stop - win[1].start),
            )
            inside = m
            if win != box:
                inside = np.zeros((win[0].stop - win[0].start, win[1].stop - win[1].start), bool)
                inside[inner] = m
            codes = None if inv is None else inv.rasterize(win)
            z = None if z_src is None else _read(z_src, z_band, win)
            merged, owners = _split_one(inside, codes, z, px, min_px, max_inventory_distance_m)
            owner = 0 if codes is None else _largest_code(inside, codes)
            del codes, z, inside, m  # this window is the largest complex's: free what is done
            local = np.ascontiguousarray(merged[inner])
            del merged
            n = len(owners)
            sums, counts = _label_sums(prob(box), local, n)
            out.add(
                c + 1,
                list(trace_pieces(local, grid.transform, (box[0].start, box[1].start), n)),
                owners,
                (sums / counts).tolist(),
                float(sums.sum() / counts.sum()),
                owner,
            )
        return out.finish()


def _stripe_rows(width: int, halo: int, pixels: int) -> int:
    """Rows of a stripe: about ``pixels`` with the ``halo`` rows read above and below it,
    and at least ``4 * halo`` (so at most 1.5 rows read per row, however wide the raster)."""
    return max(1, 4 * halo, pixels // max(1, width) - 2 * halo)


def _label_sums(
    values: NDArray[np.float32], labels: NDArray[np.int32], n: int
) -> tuple[NDArray[np.float64], NDArray[np.int64]]:
    """Per label 1..n, the sum of ``values`` and the pixel count, in row blocks (one
    whole-window ``ndimage.mean`` holds ~13 bytes per pixel of float64 and index copies)."""
    sums = np.zeros(n + 1)
    counts = np.zeros(n + 1, np.int64)
    step = max(1, (1 << 20) // max(1, labels.shape[1]))
    for r in range(0, labels.shape[0], step):
        lab = labels[r : r + step].ravel()
        sums += np.bincount(lab, weights=values[r : r + step].ravel(), minlength=n + 1)
        counts += np.bincount(lab, minlength=n + 1)
    return sums[1:], counts[1:]


def _cache_bytes(*sources: rasterio.io.DatasetReader | None) -> int:
    """GDAL's block cache for reading ``sources`` in row stripes: one row of blocks of each
    (all bands) and 1 MB more, so that no block is decoded twice, at most
    :data:`GDAL_CACHE_BYTES`."""
    need = 1 << 20
    for src in sources:
        if src is not None:
            block_rows = max(h for h, _ in src.block_shapes)
            pixel = sum(np.dtype(d).itemsize for d in src.dtypes)
            need += block_rows * src.width * pixel
    return min(GDAL_CACHE_BYTES, need)


def _largest_code(inside: NDArray[np.bool_], codes: NDArray[np.int32]) -> int:
    """The inventory code covering most pixels of ``inside`` (ties: the smallest; 0: none)."""
    found, counts = np.unique(codes[inside & (codes > 0)], return_counts=True)
    return int(found[np.argmax(counts)]) if len(found) else 0


@dataclass(frozen=True)
class OutlinesWritten:
    """What :func:`polygonize_probability` wrote (the layers themselves are in the file)."""

    glaciers: int
    complexes: int
    area_km2: float


class _OutlineWriter:
    """The two layers written as the complexes come (:meth:`add`, complexes 1, 2, ... in
    order), in chunks of whole complexes of about :data:`CHUNK_VERTICES` vertices (and
    :data:`~glaciermap.products.trace.RING_COST` per polygon part), so the
    output's polygons are never all in memory; ids count on across chunks. With
    ``simplify_m`` the glaciers are simplified as one coverage, so they are written at the
    end, together. The layers' geometry types follow from the configuration, not the data
    (a chunked layer must keep one): glaciers split from complexes (``split``) may be in
    parts (``MultiPolygon``), complexes are ``Polygon``s (4-connected); with ``simplify_m``
    (one write) they follow the data, as GDAL infers them."""

    def __init__(
        self,
        gpkg: GeoPackageWriter,
        inv_ids: list[str],
        region: str,
        year: int,
        sensor: str,
        acquisition_dates: Sequence[str],
        simplify_m: float,
        grid: RegionGrid,
        split: bool,
    ):
        self.gpkg = gpkg
        self.inv_ids = inv_ids
        self.prefix = f"{region}_{int(year)}_"
        self.common: dict[str, Any] = {
            "region": region,
            "year": int(year),
            "sensor": sensor,
            "acquisition_dates": ",".join(acquisition_dates),
        }
        self.simplify_m = simplify_m
        self.grid = grid
        one_write = simplify_m > 0  # one coverage: written at the end, types from the data
        self.types: dict[str, str] | None = None
        if not one_write:
            self.types = {
                "glaciers": "MULTIPOLYGON" if split else "POLYGON",
                "complexes": "POLYGON",
            }
        self.chunk_vertices: float = math.inf if one_write else CHUNK_VERTICES
        self.pending = _Outlines()
        self.vertices = 0
        self.done = OutlinesWritten(0, 0, 0.0)
        self.written = False

    def add(
        self,
        complex_no: int,
        geoms: list[shapely.Geometry],
        owners: list[int],
        mean_p: list[float],
        complex_mean_p: float,
        complex_owner: int,
    ) -> None:
        """Complex ``complex_no`` (the next one) and its glaciers."""
        if complex_no != self.done.complexes + len(self.pending.complex_mean_p) + 1:
            raise ValueError(f"complex {complex_no} out of order")
        self.pending.add(complex_no, geoms, owners, mean_p, complex_mean_p, complex_owner)
        parts = shapely.get_parts(np.asarray(geoms, dtype=object))
        rings = len(parts) + int(shapely.get_num_interior_rings(parts).sum())
        self.vertices += int(shapely.get_num_coordinates(parts).sum()) + RING_COST * rings
        if self.vertices >= self.chunk_vertices:
            self.flush()

    def add_all(self, out: _Outlines) -> None:
        """Complexes and glaciers gathered elsewhere, in order."""
        of = np.asarray(out.of_complex, np.int64)
        c0 = self.done.complexes + len(self.pending.complex_mean_p)
        starts = np.searchsorted(of, np.arange(c0 + 1, c0 + len(out.complex_mean_p) + 2))
        for k, (i, j) in enumerate(itertools.pairwise(starts.tolist())):
            self.add(
                c0 + k + 1,
                out.geoms[i:j],
                out.owner[i:j],
                out.mean_p[i:j],
                out.complex_mean_p[k],
                out.complex_owner[k],
            )

    def flush(self) -> None:
        """Write the complexes gathered so far (and create the layers, if empty)."""
        out, self.pending, self.vertices = self.pending, _Outlines(), 0
        n_complex = len(out.complex_mean_p)
        if not n_complex and self.written:
            return
        geoms = out.geoms
        if self.simplify_m > 0 and geoms:
            geoms = list(shapely.make_valid(shapely.coverage_simplify(geoms, self.simplify_m)))
        g0, c0 = self.done.glaciers, self.done.complexes
        complex_ids = [f"{self.prefix}C{k:05d}" for k in range(c0 + 1, c0 + n_complex + 1)]
        glacier_ids = [f"{self.prefix}{k:05d}" for k in range(g0 + 1, g0 + len(geoms) + 1)]
        inv = self.inv_ids
        gs = np.empty(len(geoms), dtype=object)
        gs[:] = geoms
        of = np.asarray(out.of_complex, np.int64) - c0  # 1.. n_complex, non-decreasing
        starts = np.searchsorted(of, np.arange(1, n_complex + 2))
        single = np.flatnonzero(np.diff(starts) == 1)
        cgeoms = np.empty(n_complex, dtype=object)
        cgeoms[single] = gs[starts[single]]  # valid already: shared, not copied
        for c in np.flatnonzero(np.diff(starts) > 1).tolist():
            cgeoms[c] = shapely.make_valid(shapely.union_all(gs[starts[c] : starts[c + 1]]))
        if self.types is None:  # one write: the types follow the data
            self.types = {"glaciers": _geometry_type(gs), "complexes": _geometry_type(cgeoms)}
        layers = (
            ("glaciers", gs, glacier_ids, out.mean_p, out.owner, of - 1),
            ("complexes", cgeoms, complex_ids, out.complex_mean_p, out.complex_owner, None),
        )
        area = 0.0
        for name, gg, ids, mean_p, owner, parent in layers:
            kind, type_id = self.types[name], shapely.get_type_id(gg)
            if kind == "POLYGON" and (type_id != 3).any():
                raise AssertionError(f"outlines: a {name} geometry that is not a Polygon")
            if kind == "MULTIPOLYGON":  # promoted: a Polygon as a MultiPolygon of one
                one = np.flatnonzero(type_id == 3)
                gg = gg.copy()
                gg[one] = shapely.multipolygons(gg[one, None])
            if not self.written:
                self.gpkg.add_layer(name, dict(zip(COLUMNS, COLUMN_TYPES, strict=True)), kind)
            areas = shapely.area(gg) / 1e6
            values: dict[str, Any] = {
                "glacier_id": ids,
                "area_km2": areas.tolist(),
                "perimeter_km": (shapely.length(gg) / 1e3).tolist(),
                "mean_probability": [float(v) for v in mean_p],
                **{k: [v] * len(gg) for k, v in self.common.items()},
                "inventory_id": [inv[k - 1] if k > 0 else None for k in owner],
                "complex_id": ids if parent is None else [complex_ids[c] for c in parent],
            }
            self.gpkg.append(name, gg, values)
            if name == "glaciers":
                area = float(areas.sum())
        self.written = True
        self.done = OutlinesWritten(g0 + len(gs), c0 + n_complex, self.done.area_km2 + area)

    def finish(self) -> OutlinesWritten:
        """Write what is left; what was written."""
        self.flush()
        d = self.done
        log.info("outlines: %d glaciers in %d complexes, %.2f km2", *astuple(d))
        return d


def _polygonize_in_memory(
    probability: PathLike,
    dest: PathLike,
    region: str,
    year: int,
    threshold: float = 0.5,
    smooth_m: float = 30.0,
    min_area_km2: float = 0.01,
    max_hole_km2: float = 0.01,
    simplify_m: float = 0.0,
    sensor: str = "",
    acquisition_dates: Sequence[str] = (),
    inventory: PathLike | None = None,
    dem: PathLike | None = None,
    max_inventory_distance_m: float = 1000.0,
) -> OutlinesWritten:
    """:func:`polygonize_probability` on whole arrays (the reference for the bounded-memory
    version: memory grows with the raster)."""
    grid = grid_of(probability)
    prob, _ = read_bands(probability, ["probability"])
    p = np.nan_to_num(prob[0], nan=0.0)
    mask = clean_mask(p >= threshold, grid.resolution, smooth_m, min_area_km2, max_hole_km2)
    complexes, n_complex = ndimage.label(mask)
    complexes = complexes.astype(np.int32)
    codes, inv_ids = (None, []) if inventory is None else _inventory_codes(inventory, grid)
    if codes is not None and not codes.any():
        codes = None  # no inventory glacier on the grid: split by the DEM if there is one
    elevation = None
    if codes is None and dem is not None:
        check_same_grid(grid, dem)
        elevation = read_bands(dem, ["elevation"])[0][0]
    glaciers, of_complex, owner = split_complexes(
        complexes, grid.resolution, min_area_km2, codes, elevation, max_inventory_distance_m
    )
    n = len(of_complex)
    idx = np.arange(1, n + 1)
    cidx = np.arange(1, n_complex + 1)
    if codes is None and elevation is None:  # glaciers = complexes: traced as a whole
        geoms = list(trace_labels(glaciers, grid.transform))
    else:
        geoms = list(trace_pieces(glaciers, grid.transform, (0, 0), n))
    out = _Outlines(
        geoms=geoms,
        of_complex=of_complex.tolist(),
        owner=owner.tolist(),
        mean_p=ndimage.mean(p, glaciers, idx).tolist() if n else [],
        complex_mean_p=ndimage.mean(p, complexes, cidx).tolist() if n_complex else [],
        complex_owner=_largest_overlap(complexes, codes, n_complex),
    )
    split = codes is not None or elevation is not None
    with geopackage(dest, grid.rio_crs) as gpkg:
        writer = _OutlineWriter(
            gpkg, inv_ids, region, year, sensor, acquisition_dates, simplify_m, grid, split
        )
        writer.add_all(out)
        return writer.finish()


def _geometry_type(geoms: NDArray[np.object_]) -> str:
    """A layer's geometry type from its data, as pyogrio (GDAL) infers it: POLYGON or
    MULTIPOLYGON when all are, MULTIPOLYGON for both (the polygons promoted), else GEOMETRY."""
    kinds = set(shapely.get_type_id(geoms).tolist())
    if kinds <= {3}:
        return "POLYGON"
    return "MULTIPOLYGON" if kinds <= {3, 6} else "GEOMETRY"


def _largest_overlap(
    complexes: NDArray[np.int32], codes: NDArray[np.int32] | None, n: int
) -> list[int]:
    """Per complex, the inventory code covering most of its pixels (ties: the smallest;
    0: none)."""
    if codes is None or not n:
        return [0] * n
    both = (complexes > 0) & (codes > 0)
    pairs, counts = np.unique(
        np.stack([complexes[both], codes[both]]).astype(np.int64), axis=1, return_counts=True
    )
    best: dict[int, tuple[int, int]] = {}
    for (c, k), cnt in zip(pairs.T.tolist(), counts.tolist(), strict=True):
        if cnt > best.get(c, (0, 0))[0]:
            best[c] = (cnt, k)
    return [best[c][1] if c in best else 0 for c in range(1, n + 1)]
