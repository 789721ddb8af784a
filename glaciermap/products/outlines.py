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

Output GeoPackage layers (written together, atomically): ``glaciers`` (the first, default,
layer) and ``complexes``, each with ``glacier_id, area_km2, perimeter_km, mean_probability,
region, year, sensor, acquisition_dates, inventory_id, complex_id``. In ``glaciers``,
``inventory_id`` is the inventory glacier the polygon belongs to; in ``complexes``,
``glacier_id`` equals ``complex_id`` and ``inventory_id`` is the inventory glacier with the
largest overlap (None without overlap). Areas and lengths are in the grid CRS (metres).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd
import rasterio.features
import shapely
from numpy.typing import NDArray
from scipy import ndimage
from shapely.geometry import shape

from glaciermap.core.grid import RegionGrid, check_same_grid, grid_of
from glaciermap.core.io import PathLike, read_bands, write_layers
from glaciermap.ingest.labels import read_inventory

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
LAYERS = ("glaciers", "complexes")
BASIN_RELIEF_M = 10.0  # an outlet's basin must be this deep, else it joins its neighbour

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
        se, u8 = disk(r), m.astype(np.uint8)
        u8 = ndimage.grey_opening(u8, footprint=se, mode="nearest")
        m = ndimage.grey_closing(u8, footprint=se, mode="nearest") > 0
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


def _grow(sl: Slices, pad: int, shape: tuple[int, int]) -> Slices:
    return (
        slice(max(0, sl[0].start - pad), min(shape[0], sl[0].stop + pad)),
        slice(max(0, sl[1].start - pad), min(shape[1], sl[1].stop + pad)),
    )


def _merge_small(pieces: NDArray[np.int32], min_px: float) -> NDArray[np.int32]:
    """Merge pieces (labels > 0 of one complex) under ``min_px`` pixels into the neighbour
    they share the longest border with, smallest first; relabelled 1..n."""
    n = int(pieces.max())
    if n <= 1:
        return pieces
    size = np.bincount(pieces.ravel(), minlength=n + 1).astype(float)
    adj: dict[int, dict[int, int]] = {k: {} for k in range(1, n + 1)}
    for a, b in ((pieces[:, :-1], pieces[:, 1:]), (pieces[:-1, :], pieces[1:, :])):
        edge = (a != b) & (a > 0) & (b > 0)
        pairs, counts = np.unique(
            np.stack([a[edge], b[edge]]).astype(np.int64), axis=1, return_counts=True
        )
        for (i, j), c in zip(pairs.T.tolist(), counts.tolist(), strict=True):
            adj[i][j] = adj[i].get(j, 0) + c
            adj[j][i] = adj[j].get(i, 0) + c
    target = np.arange(n + 1)
    alive = {k for k in range(1, n + 1) if size[k] > 0}
    while True:
        small = [i for i in alive if size[i] < min_px and adj[i]]
        if not small:
            break
        k = min(small, key=lambda i: size[i])
        into = max(adj[k], key=lambda j: adj[k][j])
        target[target == k] = into
        size[into] += size[k]
        for j, c in adj.pop(k).items():
            del adj[j][k]
            if j != into:
                adj[into][j] = adj[into].get(j, 0) + c
                adj[j][into] = adj[j].get(into, 0) + c
        alive.discard(k)
    _, relabel = np.unique(target, return_inverse=True)
    return np.asarray(relabel[pieces], dtype=np.int32)


def _split_by_inventory(
    inside: NDArray[np.bool_], inv: NDArray[np.int32], max_px: float
) -> tuple[NDArray[np.int32], list[int]]:
    """Pieces of one complex (``inside``) by nearest inventory glacier; their inventory
    codes (0 = farther than ``max_px`` from any inventory glacier)."""
    codes = inv[inside]
    if codes.size and codes.min() > 0 and codes.min() == codes.max():
        return inside.astype(np.int32), [int(codes[0])]
    if not (inv > 0).any():
        nearest = np.zeros_like(inv)
    else:
        dist, (ri, ci) = ndimage.distance_transform_edt(inv == 0, return_indices=True)
        nearest = np.where(dist <= max_px, inv[ri, ci], 0)
    nearest = np.where(inside, nearest, -1)
    pieces = np.zeros(inside.shape, np.int32)
    owners: list[int] = []
    for code in np.unique(nearest[inside]).tolist():
        if code > 0:
            owners.append(code)
            pieces[nearest == code] = len(owners)
        else:  # ice far from the inventory: one piece per connected part
            far, nfar = ndimage.label(nearest == 0)
            pieces[far > 0] = far[far > 0] + len(owners)
            owners += [0] * nfar
    return pieces, owners


def _split_by_basins(inside: NDArray[np.bool_], z: NDArray[np.float32]) -> NDArray[np.int32]:
    """Drainage basins of one complex: watershed of the elevation from its outlets."""
    from skimage.morphology import h_minima
    from skimage.segmentation import watershed

    z = z.astype(np.float64)
    bad = ~np.isfinite(z)
    if bad[inside].all():
        return inside.astype(np.int32)
    if bad.any():  # nearest valid elevation
        _, (ri, ci) = ndimage.distance_transform_edt(bad, return_indices=True)
        z = z[ri, ci]
    wall = float(z[inside].max()) + 2 * BASIN_RELIEF_M + 1.0
    zz = np.where(inside, z, wall)
    deep = h_minima(zz, BASIN_RELIEF_M)  # type: ignore[no-untyped-call]
    minima, _ = ndimage.label(deep.astype(bool) & inside)
    edge = inside & ~ndimage.binary_erosion(inside, border_value=0)
    outlets = np.unique(minima[edge & (minima > 0)])
    markers = np.where(np.isin(minima, outlets), minima, 0)
    if not markers.any():  # no outlet deep enough: the lowest edge pixel
        low = np.where(edge, zz, np.inf)
        markers = np.zeros(inside.shape, np.int32)
        markers[np.unravel_index(int(np.argmin(low)), low.shape)] = 1
    basins = watershed(zz, markers, mask=inside, connectivity=1)  # type: ignore[no-untyped-call]
    present = np.unique(basins[inside])
    return np.where(inside, np.searchsorted(present, basins) + 1, 0).astype(np.int32)


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
        codes: list[int] = []
        if inventory_codes is not None:
            pieces, codes = _split_by_inventory(
                inside, inventory_codes[win], max_inventory_distance_m / pixel_size_m
            )
        elif elevation is not None:
            pieces = _split_by_basins(inside, elevation[win])
        else:
            pieces = inside.astype(np.int32)
        merged = _merge_small(pieces, min_px)
        n = int(merged.max())
        if codes:  # a merged piece keeps the code of its largest member
            sizes = np.bincount(pieces[inside], minlength=len(codes) + 1)
            codes_after = [0] * n
            best = [0] * n
            for k in range(1, len(codes) + 1):
                j = int(merged[pieces == k].max()) - 1 if sizes[k] else -1
                if j >= 0 and sizes[k] > best[j]:
                    best[j], codes_after[j] = int(sizes[k]), codes[k - 1]
            codes = codes_after
        out = glaciers[win]
        out[inside] = merged[inside] + len(of_complex)
        of_complex += [c] * n
        owner += codes or [0] * n
    return glaciers, np.asarray(of_complex, np.int64), np.asarray(owner, np.int64)


def _inventory_codes(inventory: PathLike, grid: RegionGrid) -> tuple[NDArray[np.int32], list[str]]:
    """Inventory glaciers rasterized on the grid (code k+1 = ``ids[k]``, 0 = none)."""
    inv = read_inventory(inventory, grid.crs)
    codes, ids = pd.factorize(inv["inventory_id"])
    raster = np.zeros(grid.shape, np.int32)
    if len(inv):
        raster = rasterio.features.rasterize(
            zip(inv.geometry, (codes + 1).tolist(), strict=True),
            out_shape=grid.shape,
            transform=grid.transform,
            fill=0,
            dtype="int32",
            all_touched=False,
        )
    return np.asarray(raster, np.int32), [str(i) for i in ids]


def _vectorise(labels: NDArray[np.int32], grid: RegionGrid, n: int) -> list[shapely.Geometry]:
    """One (multi)polygon per label 1..n."""
    parts: dict[int, list[shapely.Geometry]] = {}
    for geom, value in rasterio.features.shapes(labels, mask=labels > 0, transform=grid.transform):
        parts.setdefault(int(value), []).append(shape(geom))
    return [shapely.make_valid(shapely.union_all(parts[k])) for k in range(1, n + 1)]


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
) -> gpd.GeoDataFrame:
    """Write glacier outlines (GeoPackage layers :data:`LAYERS`) and return the glaciers.

    ``smooth_m``, ``min_area_km2``, ``max_hole_km2``: see :func:`clean_mask`. ``simplify_m``:
    coverage simplification tolerance in metres (0: the exact pixel outlines). ``inventory``:
    polygons whose ice divides split the complexes; ice farther than
    ``max_inventory_distance_m`` from all of them has no ``inventory_id``. ``dem``: a raster
    on the probability's grid with an ``elevation`` band, used to split the complexes along
    drainage basins when there is no inventory (or it has no glacier on the grid).
    """
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
    geoms = _vectorise(glaciers, grid, len(of_complex))
    if simplify_m > 0 and geoms:
        geoms = list(shapely.make_valid(shapely.coverage_simplify(geoms, simplify_m)))
    complex_ids = [f"{region}_{year}_C{k:05d}" for k in range(1, n_complex + 1)]
    glacier_ids = [f"{region}_{year}_{k:05d}" for k in range(1, len(geoms) + 1)]
    idx = np.arange(1, len(geoms) + 1)
    common: dict[str, Any] = {
        "region": region,
        "year": int(year),
        "sensor": sensor,
        "acquisition_dates": ",".join(acquisition_dates),
    }
    g = _frame(
        glacier_ids,
        geoms,
        ndimage.mean(p, glaciers, idx) if len(idx) else [],
        [inv_ids[k - 1] if k > 0 else None for k in owner.tolist()],
        [complex_ids[c - 1] for c in of_complex.tolist()],
        common,
        grid,
    )
    members = [np.flatnonzero(of_complex == c) for c in range(1, n_complex + 1)]
    cgeoms = [shapely.make_valid(shapely.union_all([geoms[i] for i in m])) for m in members]
    cx = _frame(
        complex_ids,
        cgeoms,
        ndimage.mean(p, complexes, np.arange(1, n_complex + 1)) if n_complex else [],
        _largest_overlap(complexes, codes, inv_ids, n_complex),
        complex_ids,
        common,
        grid,
    )
    write_layers(dest, {"glaciers": g, "complexes": cx})
    log.info(
        "outlines: %d glaciers in %d complexes, %.2f km2",
        len(g),
        len(cx),
        float(g["area_km2"].sum()),
    )
    return g


def _frame(
    ids: list[str],
    geoms: list[shapely.Geometry],
    mean_p: Any,
    inventory_id: list[str | None],
    complex_id: list[str],
    common: dict[str, Any],
    grid: RegionGrid,
) -> gpd.GeoDataFrame:
    gdf = gpd.GeoDataFrame(
        {
            "glacier_id": pd.Series(ids, dtype=object),
            "area_km2": [g.area / 1e6 for g in geoms],
            "perimeter_km": [g.length / 1e3 for g in geoms],
            "mean_probability": np.asarray(mean_p, dtype=float),
            **common,
            "inventory_id": pd.Series(inventory_id, dtype=object),
            "complex_id": pd.Series(complex_id, dtype=object),
        },
        geometry=gpd.GeoSeries(geoms, crs=grid.rio_crs),
        crs=grid.rio_crs,
    )
    return gdf[[*COLUMNS, "geometry"]]


def _largest_overlap(
    complexes: NDArray[np.int32], codes: NDArray[np.int32] | None, ids: list[str], n: int
) -> list[str | None]:
    """Per complex, the inventory glacier covering most of its pixels (None if none)."""
    if codes is None or not n:
        return [None] * n
    both = (complexes > 0) & (codes > 0)
    pairs, counts = np.unique(
        np.stack([complexes[both], codes[both]]).astype(np.int64), axis=1, return_counts=True
    )
    best: dict[int, tuple[int, int]] = {}
    for (c, k), cnt in zip(pairs.T.tolist(), counts.tolist(), strict=True):
        if cnt > best.get(c, (0, 0))[0]:
            best[c] = (cnt, k)
    return [ids[best[c][1] - 1] if c in best else None for c in range(1, n + 1)]
