"""Splitting an ice complex into glaciers in bounded memory.

The pieces of a complex are its pixels grouped by nearest inventory glacier (within reach;
ice out of reach makes one piece per connected part), or without an inventory by drainage
basin of a DEM (:func:`split_by_basins`); pieces under the minimum area join the neighbour
they share the longest border with (:func:`merge_small`). On a window that fits in memory
:func:`glaciermap.products.outlines._split_one` does this on whole arrays. An ice cap or a
large icefield can have a bounding box of 10^8-10^9 pixels at 10 m, so a complex whose
window is larger than :data:`SPLIT_WINDOW_PX` (by basins :data:`BASIN_WINDOW_PX`) goes
through :func:`split_in_stripes`, in row stripes of its window. By the inventory
(:class:`InventoryKeys`, the reach as halo) the glaciers are the same, geometries and
inventory codes bit for bit, since the nearest inventory pixel within reach always lies in
the stripe's halo; mean probabilities are sums in another order (equal up to rounding).
By basins (:class:`BasinKeys`) the watershed, which is not local, runs on cells of
``f x f`` pixels.
"""

from __future__ import annotations

import heapq
import math
import os
import tempfile
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import shapely
from affine import Affine
from numpy.typing import NDArray
from scipy import ndimage

from glaciermap.products.outlines_stream import (
    STRIPE_PIXELS,
    PackedMask,
    StreamLabeler,
    read_at,
    stripes,
    write_at,
)
from glaciermap.products.trace import RingTracer

Slices = tuple[slice, slice]
# A complex's window larger than this is split in stripes. The whole-window split holds
# ~30 bytes per pixel (masks, inventory codes, the feature transform, pieces), so 4 Mpx is
# ~120 MB, the scale of a stripe pass; in pixels, so it holds at 10 m (20 x 20 km boxes) as
# at 30 m (60 x 60 km). Below it the one-window split is faster (one pass, no file).
SPLIT_WINDOW_PX = 1 << 22
# The same along drainage basins (a DEM, no inventory): scikit-image's h-minima and
# watershed on float64 hold ~150 bytes per pixel (measured: 583 MB traced for 4 Mpx), so
# 1 Mpx (~150 MB); a larger complex gets its basins on cells of f x f px (f = 2 up to 4 Mpx,
# 20 m cells at 10 m: finer than the 30 m Copernicus DEM the elevations come from).
BASIN_WINDOW_PX = 1 << 20
BASIN_RELIEF_M = 10.0  # an outlet's basin must be this deep, else it joins its neighbour


def nearest_code(
    inv: NDArray[np.int32], max_px: float, block_px: int = 1 << 18
) -> NDArray[np.int32]:
    """The code of the nearest inventory pixel (``inv > 0``) within ``max_px`` pixels, else 0.

    Only the feature transform is kept (8 B per pixel; with the distances scipy holds ~40)
    and distances are checked in row blocks."""
    if not (inv > 0).any():
        return np.zeros_like(inv)
    ft = ndimage.distance_transform_edt(inv == 0, return_distances=False, return_indices=True)
    out = np.empty(inv.shape, np.int32)
    h, w = inv.shape
    cols = np.arange(w)
    step = max(1, block_px // max(1, w))
    for r0 in range(0, h, step):
        ri, ci = ft[0, r0 : r0 + step], ft[1, r0 : r0 + step]
        d2 = (ri - np.arange(r0, r0 + len(ri))[:, None]).astype(np.int64) ** 2
        d2 += (ci - cols).astype(np.int64) ** 2
        out[r0 : r0 + step] = np.where(d2 <= max_px * max_px, inv[ri, ci], 0)
    return out


def split_by_basins(inside: NDArray[np.bool_], z: NDArray[np.float32]) -> NDArray[np.int32]:
    """Drainage basins of one complex: watershed of the elevation from its outlets."""
    from skimage.morphology import h_minima
    from skimage.segmentation import watershed

    z = z.astype(np.float64)
    bad = ~np.isfinite(z)
    if bad[inside].all():
        return inside.astype(np.int32)
    if bad.any():  # nearest valid elevation
        ri, ci = ndimage.distance_transform_edt(bad, return_distances=False, return_indices=True)
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


Pairs = tuple[NDArray[np.int64], NDArray[np.int64], NDArray[np.int64]]


def count_pairs(
    i: NDArray[np.int64], j: NDArray[np.int64], counts: NDArray[np.int64] | None = None
) -> Pairs:
    """The distinct pairs ``(i, j)`` of non-negative ids (ascending) and their summed
    ``counts`` (1 each by default)."""
    if not len(i):
        empty = np.zeros(0, np.int64)
        return empty, empty.copy(), empty.copy()
    stride = int(max(i.max(), j.max())) + 1
    uniq, at = np.unique(i.astype(np.int64) * stride + j, return_inverse=True)
    total = np.bincount(at.ravel(), weights=counts, minlength=len(uniq)).astype(np.int64)
    return uniq // stride, uniq % stride, total


def edge_pairs(
    pieces: NDArray[np.int64] | NDArray[np.int32], above: NDArray[np.int64] | None = None
) -> Pairs:
    """Pairs ``i < j`` of pieces (ids > 0) that share pixel edges and how many, within
    ``pieces`` and (``above``: the row above it) across its top edge."""
    lo, hi = [], []
    rows = pieces if above is None else np.concatenate([above[None], pieces])
    for a, b in ((pieces[:, :-1], pieces[:, 1:]), (rows[:-1], rows[1:])):
        edge = (a != b) & (a > 0) & (b > 0)
        x, y = a[edge].astype(np.int64), b[edge].astype(np.int64)
        lo.append(np.minimum(x, y))
        hi.append(np.maximum(x, y))
    return count_pairs(np.concatenate(lo), np.concatenate(hi))


def merge_small(size: NDArray[np.int64], pairs: Pairs, min_px: float) -> NDArray[np.int64]:
    """Merge pieces 1..n (``size[k]`` pixels; ``pairs``: who borders whom, over how many
    pixel edges) under ``min_px`` pixels into the neighbour they share the longest border
    with, smallest first (ties: the lower id; for the neighbour, the lower id). Returns per
    piece 0..n its merged label (0 -> 0; 1..m in the order of the pieces that remain)."""
    n = len(size) - 1
    sz = size.astype(np.int64).copy()
    adj: list[dict[int, int]] = [{} for _ in range(n + 1)]
    for a, b, c in zip(*(p.tolist() for p in pairs), strict=True):
        adj[a][b] = c
        adj[b][a] = c
    parent = np.arange(n + 1)
    heap = [(int(sz[k]), k) for k in range(1, n + 1) if 0 < sz[k] < min_px and adj[k]]
    heapq.heapify(heap)
    while heap:
        s, k = heapq.heappop(heap)
        if parent[k] != k or s != sz[k] or not adj[k]:
            continue  # merged, grown since, or no neighbour left
        into = max(adj[k], key=lambda m: (adj[k][m], -m))
        parent[k] = into
        sz[into] += sz[k]
        for m, c in adj[k].items():
            del adj[m][k]
            if m != into:
                adj[into][m] = adj[into].get(m, 0) + c
                adj[m][into] = adj[m].get(into, 0) + c
        adj[k] = {}
        if sz[into] < min_px and adj[into]:
            heapq.heappush(heap, (int(sz[into]), into))
    while True:  # follow merges into pieces that merged on
        up = parent[parent]
        if np.array_equal(up, parent):
            break
        parent = up
    _, relabel = np.unique(parent, return_inverse=True)
    return relabel.astype(np.int64)


def merged_codes(
    relabel: NDArray[np.int64], size: NDArray[np.int64], codes: list[int]
) -> list[int]:
    """Per merged piece 1..m, the inventory code of its largest piece (ties: the first)."""
    m = int(relabel.max(initial=0))
    out, best = [0] * m, [0] * m
    for k, code in enumerate(codes, start=1):
        j = int(relabel[k]) - 1
        if size[k] and j >= 0 and size[k] > best[j]:
            best[j], out[j] = int(size[k]), code
    return out


@dataclass
class Split:
    """One complex split into glaciers 1..m: their geometries, inventory codes (0: none)
    and mean probabilities; the complex's mean probability and largest-overlap code."""

    geoms: list[shapely.Geometry]
    codes: list[int]
    mean_p: list[float]
    complex_mean_p: float
    complex_code: int


class _RowFile:
    """An int32 raster of ``shape`` in an anonymous temporary file, written and read by
    rows with positional I/O (none of it stays in memory)."""

    def __init__(self, shape: tuple[int, int], folder: str | os.PathLike[str] | None):
        self.width = shape[1]
        self._file = tempfile.TemporaryFile(dir=folder)
        try:
            os.ftruncate(self._file.fileno(), max(1, shape[0] * shape[1] * 4))
        except BaseException:
            self._file.close()
            raise

    def close(self) -> None:
        self._file.close()

    def write(self, r0: int, rows: NDArray[np.int32]) -> None:
        data = np.ascontiguousarray(rows, np.int32).tobytes()
        write_at(self._file.fileno(), data, r0 * self.width * 4)

    def read(self, r0: int, r1: int) -> NDArray[np.int32]:
        buf = read_at(self._file.fileno(), (r1 - r0) * self.width * 4, r0 * self.width * 4)
        return np.frombuffer(buf, np.int32).reshape(r1 - r0, self.width)


class InventoryKeys:
    """Pieces of a complex by nearest inventory glacier (the key is its code; 0: out of
    reach), for :func:`split_in_stripes`: per stripe, the inventory rasterized by
    ``codes_on(window)`` on the stripe's rows of the window with ``pad`` rows more on each
    side and ``pad`` columns (the reach ``max_px`` in whole pixels), so the nearest inventory
    pixel within reach is always in it; also counts the inventory codes under the complex."""

    def __init__(
        self,
        codes_on: Callable[[Slices], NDArray[np.int32]],
        shape: tuple[int, int],
        box: Slices,
        pad: int,
        max_px: float,
    ):
        self.codes_on, self.shape, self.box = codes_on, shape, box
        self.pad, self.max_px = pad, max_px
        self.cols = slice(max(0, box[1].start - pad), min(shape[1], box[1].stop + pad))
        self.overlap: dict[int, int] = {}

    def stripe_rows(self) -> int:
        """Rows of a stripe: about STRIPE_PIXELS with the halo, at least the reach."""
        width = self.cols.stop - self.cols.start
        return max(1, STRIPE_PIXELS // max(1, width) - 2 * self.pad, self.pad)

    def prepare(self, spans: list[tuple[int, int]], inside: Inside) -> None:
        """Nothing to prepare: the keys of a stripe need only its halo."""

    def keys(self, r0: int, r1: int, ins: NDArray[np.bool_]) -> NDArray[np.int64]:
        """The keys of box rows ``r0:r1`` where ``ins`` (0 elsewhere)."""
        r_box, c_box = self.box[0].start, self.box[1].start
        w = self.box[1].stop - c_box
        a, b = max(0, r_box + r0 - self.pad), min(self.shape[0], r_box + r1 + self.pad)
        inv = self.codes_on((slice(a, b), self.cols))
        core = (
            slice(r_box + r0 - a, r_box + r1 - a),
            slice(c_box - self.cols.start, c_box - self.cols.start + w),
        )
        under = inv[core][ins]
        for code, n in zip(*np.unique(under[under > 0], return_counts=True), strict=True):
            self.overlap[int(code)] = self.overlap.get(int(code), 0) + int(n)
        near = nearest_code(inv, self.max_px)[core]
        return np.where(ins, near, 0).astype(np.int64)

    def code(self, key: int) -> int:
        """The inventory code of a piece key (the key itself)."""
        return key

    def complex_code(self) -> int:
        """The code under most of the complex (ties: the smallest; 0: none)."""
        return max(self.overlap.items(), key=lambda kv: (kv[1], -kv[0]), default=(0, 0))[0]


class BasinKeys:
    """Pieces of a complex by drainage basin (:func:`split_by_basins`), for
    :func:`split_in_stripes`, on the box cut into ``f x f`` cells, ``f`` the smallest factor
    that brings the box to :data:`BASIN_WINDOW_PX` cells: a cell is in the complex when at
    least half its pixels are, its elevation is the mean of its valid pixels; each pixel
    takes the basin of its cell, or of the nearest basin cell. With ``f = 1`` these are the
    basins of the whole window exactly; above, divides follow the cells (20 m up to a 4 Mpx
    box at 10 m, 100 m for a 100 Mpx box: about the resolution of the 30 m Copernicus DEM
    they come from, or coarser only for the largest ice caps)."""

    def __init__(self, elevation: Callable[[Slices], NDArray[np.float32]], box: Slices):
        self.elevation, self.box = elevation, box
        h, w = box[0].stop - box[0].start, box[1].stop - box[1].start
        self.f = max(1, math.ceil(math.sqrt(h * w / BASIN_WINDOW_PX)))
        self.fill = np.zeros((0, 0), np.int32)

    def stripe_rows(self) -> int:
        """About STRIPE_PIXELS, whole rows of cells."""
        w = self.box[1].stop - self.box[1].start
        return max(1, STRIPE_PIXELS // max(1, w) // self.f) * self.f

    def prepare(self, spans: list[tuple[int, int]], inside: Inside) -> None:
        """The cells' complex share and elevation, stripe by stripe, then their basins."""
        f, (rows, cols) = self.f, self.box
        h, w = rows.stop - rows.start, cols.stop - cols.start
        hc, wc = -(-h // f), -(-w // f)
        count = np.zeros((hc, wc))  # sums of whole numbers, exact in float64
        z_sum = np.zeros((hc, wc))
        z_n = np.zeros((hc, wc))
        if any(r0 % f for r0, _ in spans):
            raise ValueError(f"stripes must start on whole cells of {f} rows")
        for r0, r1 in spans:
            z = self.elevation((slice(rows.start + r0, rows.start + r1), cols))
            hr = -(-(r1 - r0) // f)
            cells = (slice(r0 // f, r0 // f + hr), slice(0, wc))
            count[cells] += _cell_sums(inside(r0, r1), f, hr, wc)
            ok = np.isfinite(z)
            z_sum[cells] += _cell_sums(np.where(ok, z, 0.0), f, hr, wc)
            z_n[cells] += _cell_sums(ok, f, hr, wc)
            del z, ok
        n_px = np.minimum(f, h - f * np.arange(hc))[:, None] * np.minimum(f, w - f * np.arange(wc))
        cell_in = 2 * count >= n_px
        with np.errstate(invalid="ignore", divide="ignore"):
            z_cell = np.where(z_n > 0, z_sum / np.maximum(z_n, 1), np.nan).astype(np.float32)
        del count, z_sum, z_n, n_px
        basins = split_by_basins(cell_in, z_cell) if cell_in.any() else np.zeros((hc, wc), np.int32)
        self.fill = nearest_code(basins, float(hc + wc))  # every cell: its nearest basin

    def keys(self, r0: int, r1: int, ins: NDArray[np.bool_]) -> NDArray[np.int64]:
        """The keys of box rows ``r0:r1`` where ``ins`` (0 elsewhere, and where no cell is
        in the complex: those parts are split by connectivity)."""
        f, w = self.f, ins.shape[1]
        cell = self.fill[np.arange(r0, r1)[:, None] // f, np.arange(w)[None, :] // f]
        return np.where(ins, cell, 0).astype(np.int64)

    def code(self, key: int) -> int:
        """Basins have no inventory code."""
        return 0

    def complex_code(self) -> int:
        """No inventory: no code."""
        return 0


Inside = Callable[[int, int], NDArray[np.bool_]]


def _cell_sums(a: NDArray[np.generic], f: int, hr: int, wc: int) -> NDArray[np.float64]:
    """Sums of ``a`` over ``f x f`` cells (``hr x wc`` of them; the last ones partial)."""
    pad = np.zeros((hr * f, wc * f), np.float64)
    pad[: a.shape[0], : a.shape[1]] = a
    return pad.reshape(hr, f, wc, f).sum(axis=(1, 3))


def split_in_stripes(
    store: PackedMask,
    box: Slices,
    seed: tuple[int, int],
    size: int,
    source: InventoryKeys | BasinKeys,
    prob: Callable[[Slices], NDArray[np.float32]],
    min_px: float,
    transform: Affine,
    folder: str | os.PathLike[str] | None = None,
    stripe_rows: int | None = None,
) -> Split:
    """Split the complex of ``size`` pixels with bounding box ``box`` and first pixel
    ``seed`` (grid row, column) in the final mask ``store`` into pieces by ``source``
    (:class:`InventoryKeys`, :class:`BasinKeys`), in row stripes of the box (default: the
    source's, about :data:`~glaciermap.products.outlines_stream.STRIPE_PIXELS` pixels with
    its halo), as :func:`glaciermap.products.outlines._split_one` does on the whole window
    (``min_px``: the smallest glacier). Memory is a stripe and its halo (by the inventory,
    at least ``3 * pad`` rows of the window's width: ~150 MB for a box 20,000 px wide with a
    100 px reach; by basins, also :data:`BASIN_WINDOW_PX` cells), O(pieces and outline
    vertices); the pieces of each stripe wait in a temporary file in ``folder`` (4 bytes
    per pixel of the box).

    1. Which pixels of the box are this complex (a stream labelling of the box); the
       source prepares (basins: the cells, in one more pass).
    2. Per stripe: the source's keys; ice without a key labelled across stripes (one piece
       per connected part); piece sizes, probability sums and shared borders (also across
       stripe seams) counted. Then the small pieces merged (:func:`merge_small`).
    3. Tracing: glaciers that share a border get different colours (greedy colouring of
       the border graph, a handful of colours on a plane), so within one colour the
       4-connected parts of each glacier are the components of that colour's mask, which
       :class:`~glaciermap.products.trace.RingTracer` traces in stripes as it does the
       complexes; a glacier's parts in raster order make its geometry.
    """
    r_box, c_box = int(box[0].start), int(box[1].start)
    h, w = int(box[0].stop) - r_box, int(box[1].stop) - c_box
    spans = list(stripes(h, stripe_rows or source.stripe_rows()))

    def mask(r0: int, r1: int) -> NDArray[np.bool_]:
        return store.read_window(slice(r_box + r0, r_box + r1), slice(c_box, c_box + w))

    # 1. this complex's pixels in the box
    ice = StreamLabeler((h, w), bbox=False, seeds=False)
    total, seed_id = 0, -1
    for r0, r1 in spans:
        m = mask(r0, r1)
        lab, _ = ice.add(r0, m)
        total += int(np.count_nonzero(m))
        if r0 <= seed[0] - r_box < r1:
            first = int(lab[seed[0] - r_box - r0, seed[1] - c_box])
            if not first:
                raise AssertionError("the complex's first pixel is not ice")
            seed_id = first + ice.bases[r0] - 1
    _, ice_comp = ice.finish()
    if seed_id < 0:
        raise AssertionError("the complex's first pixel is outside its box")
    this = ice_comp == ice_comp[seed_id]

    def inside(r0: int, r1: int) -> NDArray[np.bool_]:
        m = mask(r0, r1)
        if total == size:  # no other patch in the box
            return m
        lab, k = ndimage.label(m)
        base = ice.bases[r0]
        return np.concatenate([[False], this[base : base + k]])[lab]

    source.prepare(spans, inside)

    # 2. pieces (keys: the source's > 0, or -(1 + provisional id) of ice without one)
    keys = _RowFile((h, w), folder)
    try:
        far = StreamLabeler((h, w), bbox=False, seeds=False)
        found: set[int] = set()
        key_px: list[tuple[NDArray[np.int64], NDArray[np.int64], NDArray[np.float64]]] = []
        key_pairs: list[Pairs] = []
        above: NDArray[np.int64] | None = None
        for r0, r1 in spans:
            ins = inside(r0, r1)
            key = source.keys(r0, r1, ins)
            flab, _ = far.add(r0, ins & (key == 0))
            out = flab > 0
            key[out] = -(far.bases[r0] + flab[out].astype(np.int64))
            del flab, out
            keys.write(r0, key.astype(np.int32))
            sel = key != 0
            p = prob((slice(r_box + r0, r_box + r1), slice(c_box, c_box + w)))[sel]
            u, at = np.unique(key[sel], return_inverse=True)
            found.update(u[u > 0].tolist())
            n_px = np.bincount(at, minlength=len(u)).astype(np.int64)
            key_px.append((u.astype(np.int64), n_px, np.bincount(at, p, len(u)).astype(np.float64)))
            del p, at
            # shared borders, in key space (through dense ids: keys span a wide range); the
            # stripe's keys are u, the row above adds its own
            u_all = u if above is None else np.union1d(u, above[above != 0])

            def dense(k: NDArray[np.int64], ids: NDArray[np.int64] = u_all) -> NDArray[np.int64]:
                return np.where(k != 0, np.searchsorted(ids, k) + 1, 0)

            up = None if above is None else dense(above)
            i, j, c = edge_pairs(dense(key), up)
            key_pairs.append((u_all[i - 1], u_all[j - 1], c))
            above = key[-1].copy()
            del key, ins, up
        _, far_comp = far.finish()
        nfar = int(far_comp.max(initial=-1)) + 1
        codes_found = np.asarray(sorted(found), np.int64)

        def piece_of(k: NDArray[np.int64]) -> NDArray[np.int64]:
            """Keys -> pieces: ice without a key 1..nfar, then the keys found, ascending."""
            out = np.zeros(k.shape, np.int64)
            pos, neg = k > 0, k < 0
            out[pos] = nfar + 1 + np.searchsorted(codes_found, k[pos])
            out[neg] = far_comp[-k[neg] - 1] + 1
            return out

        n_pieces = nfar + len(codes_found)
        size_of = np.zeros(n_pieces + 1, np.int64)
        sum_of = np.zeros(n_pieces + 1)
        for u, cnt, s in key_px:
            pc = piece_of(u)
            size_of += np.bincount(pc, weights=cnt, minlength=n_pieces + 1).astype(np.int64)
            sum_of += np.bincount(pc, weights=s, minlength=n_pieces + 1)
        del key_px
        none = np.zeros(0, np.int64)
        pi = np.concatenate([none, *(piece_of(i) for i, _, _ in key_pairs)])
        pj = np.concatenate([none, *(piece_of(j) for _, j, _ in key_pairs)])
        pn = np.concatenate([none, *(c for _, _, c in key_pairs)])
        del key_pairs
        diff = pi != pj
        pairs = count_pairs(np.minimum(pi, pj)[diff], np.maximum(pi, pj)[diff], pn[diff])
        del pi, pj, pn, diff
        relabel = merge_small(size_of, pairs, min_px)
        piece_codes = [0] * nfar + [source.code(k) for k in codes_found.tolist()]
        codes = merged_codes(relabel, size_of, piece_codes)
        n_gl = len(codes)
        g_size = np.bincount(relabel, weights=size_of, minlength=n_gl + 1)[1:]
        g_sum = np.bincount(relabel, weights=sum_of, minlength=n_gl + 1)[1:]

        # 3. colours of the glaciers, then their parts traced per colour
        ga, gb = relabel[pairs[0]], relabel[pairs[1]]
        touch: list[set[int]] = [set() for _ in range(n_gl + 1)]
        for x, y in zip(ga.tolist(), gb.tolist(), strict=True):
            if x != y:
                touch[x].add(y)
                touch[y].add(x)
        colour = np.full(n_gl + 1, -1, np.int64)
        for g in range(1, n_gl + 1):
            used = {int(colour[t]) for t in touch[g] if t < g}
            colour[g] = next(k for k in range(len(used) + 1) if k not in used)
        n_col = int(colour.max(initial=-1)) + 1
        labelers = [StreamLabeler((h, w), bbox=False, seeds=False) for _ in range(n_col)]
        tracers = [RingTracer((h, w)) for _ in range(n_col)]
        part_glacier: list[list[NDArray[np.int64]]] = [[] for _ in range(n_col)]
        for r0, r1 in spans:
            glacier = relabel[piece_of(keys.read(r0, r1).astype(np.int64))]
            col = colour[glacier]
            for k in range(n_col):
                mk = col == k
                lab, nk = labelers[k].add(r0, mk)
                tracers[k].add(r0, lab, labelers[k].bases[r0], mk)
                pg = np.zeros(nk + 1, np.int64)
                pg[lab] = glacier
                part_glacier[k].append(pg[1:])
            del glacier, col
    finally:
        keys.close()
    parts: list[list[shapely.Geometry]] = [[] for _ in range(n_gl + 1)]
    for k in range(n_col):
        comps, comp = labelers[k].finish()
        of_part = np.zeros(len(comps), np.int64)
        if part_glacier[k]:
            of_part[comp] = np.concatenate(part_glacier[k])
        done, polys = tracers[k].finish(comp, transform, (r_box, c_box))
        for part, poly in zip(done.tolist(), polys, strict=True):
            parts[int(of_part[part])].append(poly)
    geoms = [ps[0] if len(ps) == 1 else shapely.multipolygons(ps) for ps in parts[1:]]
    return Split(
        geoms,
        codes,
        (g_sum / g_size).tolist(),
        float(g_sum.sum() / g_size.sum()),
        source.complex_code(),
    )
