"""Polygons of the 4-connected components of a binary raster, traced in row stripes.

A component's outline runs along pixel edges; its vertices are the pixel corners where the
outline turns. Whether a corner is one depends only on its four pixels (top left ``a``, top
right ``b``, bottom left ``c``, bottom right ``d``): an outline turns there when an odd number
of them is ice (``a ^ b ^ c ^ d``), and two outlines meet at a *saddle* (``a, d`` ice and
``b, c`` not, or the reverse). So each stripe of rows contributes its corners alone (the row
above it is kept); nothing of the stripe's pixels stays.

The outlines are directed with the ice on the right of the direction of travel (in pixel
coordinates, rows growing down): a shell then has a positive shoelace area, a hole a negative
one. From a vertex, the outline goes straight to the next vertex in its row or column, so
the successor of every vertex follows from the vertices sorted by row and by column, and the
rings are the cycles of that permutation, put in order in one pass (scipy's depth-first
order over the rings chained into one path). At a saddle, the two ice pixels belong to the
same component (joined elsewhere) or not: if not, each outline turns back to its own pixel;
if so, the outlines cross to the other pixel, which splits the component's outline there
into rings that touch at the saddle point (a shell and a hole, or two holes), the valid
(OGC) form of what GDAL's polygonization writes as one self-touching ring.

Memory: one stripe, plus 17 bytes per outline vertex while the stripes come, and about
70 bytes per vertex while they are joined, besides the polygons themselves. The outlines of
components that are complete can be joined and taken out while the stripes come
(:meth:`RingTracer.take_chunks`), so the vertices held are those of components still
growing. Time: a few array passes per pixel and sorting the vertices.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator

import numpy as np
import shapely
from affine import Affine
from numpy.typing import NDArray
from scipy import ndimage
from scipy.sparse import csr_matrix
from scipy.sparse.csgraph import connected_components, depth_first_order

# Directions of travel (pixel coordinates: columns right, rows down).
RIGHT, LEFT, DOWN, UP = 0, 1, 2, 3
# Corner pixels: a (top left), b (top right), c (bottom left), d (bottom right); a corner's
# code is a + 2 b + 4 c + 8 d.
_A, _B, _C, _D = 0, 1, 2, 3


def _entries() -> tuple[NDArray[np.int8], NDArray[np.int8]]:
    """Per corner code, the outlines arriving there: (in direction, out direction when the
    saddle's pixels are separate, out direction when joined, ice pixel on the right of the
    arriving edge); up to two entries per code (-1: none)."""
    table = np.full((16, 2, 4), -1, np.int8)
    count = np.zeros(16, np.int8)
    for code in range(16):
        a, b, c, d = (bool(code >> k & 1) for k in range(4))
        ins = [  # (direction, ice pixel beside the arriving edge)
            (RIGHT, _C, c and not a),  # along the edge left of the corner
            (LEFT, _B, b and not d),  # along the edge right of it
            (DOWN, _A, a and not b),  # along the edge above it
            (UP, _D, d and not c),  # along the edge below it
        ]
        outs = [
            (RIGHT, d and not b),
            (LEFT, a and not c),
            (DOWN, c and not d),
            (UP, b and not a),
        ]
        arriving = [(k, px) for k, px, on in ins if on]
        leaving = [k for k, on in outs if on]
        if len(arriving) == 1 and arriving[0][0] // 2 != leaving[0] // 2:  # a turn
            (k, px), out = arriving[0], leaving[0]
            table[code, 0] = (k, out, out, px)
            count[code] = 1
        elif code == 9:  # a, d ice: separate, each turns back to its pixel; joined: crosses
            table[code, 0] = (DOWN, LEFT, RIGHT, _A)
            table[code, 1] = (UP, RIGHT, LEFT, _D)
            count[code] = 2
        elif code == 6:  # b, c ice
            table[code, 0] = (RIGHT, DOWN, UP, _C)
            table[code, 1] = (LEFT, UP, DOWN, _B)
            count[code] = 2
    return table, count


_TABLE, _COUNT = _entries()
# Polygons built at a time (finish_chunks): vertices, counting each ring as RING_COST more
# (a small ring costs more as a GEOS and Python object, and a row in the output, than its
# vertices): 1 << 18 is 4 MB of coordinates, or ~7,000 speckle-sized polygons (with their
# attributes, WKB and R-tree rows ~10 MB per layer written); larger chunks gain no time.
CHUNK_VERTICES = 1 << 18
RING_COST = 32


class RingTracer:
    """The outlines of a labelled binary raster of ``shape`` fed as consecutive row stripes
    (:meth:`add`), returned by :meth:`finish` as one polygon per component."""

    def __init__(self, shape: tuple[int, int]):
        self.shape = shape
        self._next_row = 0
        self._prev_mask = np.zeros(shape[1], bool)
        self._prev_ids = np.full(shape[1], -1, np.int64)
        self._rows: list[NDArray[np.int32]] = []
        self._cols: list[NDArray[np.int32]] = []
        self._codes: list[NDArray[np.uint8]] = []
        self._ids: list[NDArray[np.int64]] = []  # per arriving outline: its ice pixel's id

    def add(
        self,
        r0: int,
        labels: NDArray[np.int32],
        base: int,
        mask: NDArray[np.bool_] | None = None,
    ) -> None:
        """Stripe ``labels`` (rows ``r0:r0 + len(labels)``, fed in order; 0 = background,
        label k has the id ``base + k - 1``; ``mask``: ``labels > 0`` if at hand): its
        corners from the row above it on."""
        if r0 != self._next_row:
            raise ValueError(f"stripe at row {r0}, expected row {self._next_row}")
        h, w = labels.shape
        if h == 0:
            return
        last = r0 + h == self.shape[0]
        if mask is None:
            mask = labels > 0
        padded = np.zeros((h + 1 + last, w + 2), bool)
        padded[0, 1:-1] = self._prev_mask
        padded[1 : h + 1, 1:-1] = mask
        a, b = padded[:-1, :-1], padded[:-1, 1:]
        c, d = padded[1:, :-1], padded[1:, 1:]
        top, bottom = a ^ b, c ^ d
        vertex = top ^ bottom
        vertex |= top & bottom & (a ^ c)  # saddles
        del top, bottom
        at = np.flatnonzero(vertex)
        del vertex
        ii, jj = np.divmod(at, w + 1)
        code = (
            a[ii, jj].astype(np.uint8)
            | b[ii, jj].astype(np.uint8) << 1
            | c[ii, jj].astype(np.uint8) << 2
            | d[ii, jj].astype(np.uint8) << 3
        ).astype(np.uint8)
        # ids of the ice pixels beside the arriving outlines (padded rows/columns: + 1)
        n = _COUNT[code]
        vx = np.repeat(np.arange(len(code)), n)
        k = np.arange(len(vx)) - np.repeat(np.cumsum(n) - n, n)
        px = _TABLE[code[vx], k, 3]
        pr = ii[vx] + (px >= _C)  # row in padded: a, b on row ii; c, d on ii + 1
        pc = jj[vx] + (px % 2 == 1)  # column in padded: a, c on jj; b, d on jj + 1
        ids = np.empty(len(vx), np.int64)
        above = pr == 0
        ids[above] = self._prev_ids[pc[above] - 1]
        here = ~above
        ids[here] = labels[pr[here] - 1, pc[here] - 1].astype(np.int64) + (base - 1)
        if len(ids) and (ids < 0).any():
            raise AssertionError("an outline beside a pixel that is not ice")
        self._rows.append((ii + r0).astype(np.int32))
        self._cols.append(jj.astype(np.int32))
        self._codes.append(code)
        self._ids.append(ids)
        self._prev_mask = mask[-1].copy()
        self._prev_ids = np.where(labels[-1] > 0, labels[-1].astype(np.int64) + (base - 1), -1)
        self._next_row = r0 + h

    def finish(
        self,
        component_of: NDArray[np.int64],
        transform: Affine,
        origin: tuple[int, int] = (0, 0),
    ) -> tuple[NDArray[np.int64], NDArray[np.object_]]:
        """The components that have polygons (ascending) and their polygons, on the grid
        with ``transform`` (as GDAL puts pixel corners on it), the raster being the window
        at ``origin`` (row, column) of that grid: corners are put on the grid from their
        grid row and column, so a window gives the whole grid's coordinates bit for bit.
        ``component_of``: per pixel id its component (0, 1, ...; -1: left out, its outlines
        are dropped)."""
        parts = list(self.finish_chunks(component_of, transform, origin))
        if not parts:
            return np.zeros(0, np.int64), np.empty(0, dtype=object)
        comps = np.concatenate([c for c, _ in parts])
        polys = np.concatenate([p for _, p in parts])
        return comps, polys

    @property
    def pending(self) -> int:
        """Outline vertices held (added, not yet taken)."""
        return sum(len(c) for c in self._codes)

    def finish_chunks(
        self,
        component_of: NDArray[np.int64],
        transform: Affine,
        origin: tuple[int, int] = (0, 0),
        max_vertices: int = CHUNK_VERTICES,
    ) -> Iterator[tuple[NDArray[np.int64], NDArray[np.object_]]]:
        """:meth:`finish` in consecutive chunks of whole components (ascending), each of
        about ``max_vertices`` vertices (each ring counting :data:`RING_COST` more) or one
        component: the polygons need not all be in memory at once."""
        if self._next_row != self.shape[0]:
            raise ValueError(f"stripes end at row {self._next_row} of {self.shape[0]}")

        def status(ids: NDArray[np.int64]) -> NDArray[np.int64]:
            return component_of[ids]

        yield from self.take_chunks(status, transform, origin, max_vertices)

    def take_chunks(
        self,
        status: Callable[[NDArray[np.int64]], NDArray[np.int64]],
        transform: Affine,
        origin: tuple[int, int] = (0, 0),
        max_vertices: int = CHUNK_VERTICES,
    ) -> Iterator[tuple[NDArray[np.int64], NDArray[np.object_]]]:
        """The polygons of the components that are complete, taken out of the tracer (so
        memory holds only the outlines of components still growing), as :meth:`finish_chunks`
        yields them. ``status(ids)``: per pixel id its component (0, 1, ...: complete, and
        those taken together must be consecutive), -1 (complete, left out: its outlines are
        dropped) or -2 (not complete: its outlines stay). A component is complete when no
        stripe to come can add to it; two components that may still join must both stay."""
        if not self._codes:
            return
        rows, cols = np.concatenate(self._rows), np.concatenate(self._cols)
        code, ids = np.concatenate(self._codes), np.concatenate(self._ids)
        self._rows, self._cols, self._codes, self._ids = [], [], [], []
        comp = status(ids)  # per outline
        go = comp >= -1
        n = _COUNT[code]
        starts = np.cumsum(n, dtype=np.int64)
        starts -= n
        going = np.add.reduceat(go.view(np.int8), starts) if len(starts) else n
        take, stay = going > 0, going < n
        del going
        mixed = np.flatnonzero(take & stay)  # saddles between a complete and a growing one
        if len(mixed):  # two components: each outline turns back to its own pixel
            first = starts[mixed]
            k = np.where(go[first], 0, 1)  # the outline that goes
            px = _TABLE[code[mixed], :, 3].astype(np.uint8)  # ice pixel of each outline
            went = np.uint8(1) << px[np.arange(len(mixed)), k]
            kept = np.uint8(1) << px[np.arange(len(mixed)), 1 - k]
        kept_code = code[stay]
        if len(mixed):
            kept_code[np.searchsorted(np.flatnonzero(stay), mixed)] = kept
        if stay.any():
            self._rows, self._cols = [rows[stay]], [cols[stay]]
            self._codes, self._ids = [kept_code], [ids[~go]]
        del kept_code
        code = code[take]
        if len(mixed):
            code[np.searchsorted(np.flatnonzero(take), mixed)] = went
        rows, cols, comp = rows[take], cols[take], comp[go]
        del ids, go, starts, take, stay
        if not len(code):
            return
        yield from self._chunks(rows, cols, code, comp, transform, origin, max_vertices)

    def _chunks(
        self,
        rows: NDArray[np.int32],
        cols: NDArray[np.int32],
        code: NDArray[np.uint8],
        comp: NDArray[np.int64],
        transform: Affine,
        origin: tuple[int, int],
        max_vertices: int,
    ) -> Iterator[tuple[NDArray[np.int64], NDArray[np.object_]]]:
        """The polygons of complete components from their outline vertices (row-major) and
        per outline its component (-1: dropped), in chunks."""
        vx, succ = _successors(cols, code, comp[_saddle_outlines(code)])
        order, starts = _rings(succ)
        del succ
        ring_comp = comp[order[starts]]
        sizes = np.diff(np.append(starts, len(order)))
        # every outline of a ring runs beside its component's ice: else labels touched
        if not np.array_equal(comp[order], np.repeat(ring_comp, sizes)):
            raise ValueError("labels of different components touch: trace each apart")
        del comp
        at = vx[order]  # the vertices in ring order
        del vx, order
        x, y = cols[at], rows[at]
        del at, rows, cols
        # shoelace, exact in integers: positive for shells (ice on the right), negative holes
        after = np.arange(1, len(x) + 1, dtype=starts.dtype)
        after[starts + sizes - 1] = starts  # each ring closes on its first vertex
        cross = x.astype(np.int64) * y[after] - x[after].astype(np.int64) * y
        del after
        hole = np.add.reduceat(cross, starts) < 0
        del cross
        keep = np.flatnonzero(ring_comp >= 0)
        if not len(keep):
            return
        keep = keep[np.lexsort((hole[keep], ring_comp[keep]))]  # by component, shell first
        first_comp = int(ring_comp[keep[0]])
        kept_comp = ring_comp[keep] - first_comp  # from 0: bincounts stay small
        comps = np.unique(kept_comp)
        shells = np.bincount(kept_comp, weights=~hole[keep])
        if (shells[comps] != 1).any():
            raise AssertionError("a component with more or less than one shell")
        del hole
        # chunks of whole components: cut where a component starts past a multiple of
        # max_vertices (vertices and RING_COST per ring)
        first = np.searchsorted(kept_comp, comps)  # each component's first kept ring
        cost = np.cumsum(sizes[keep] + RING_COST, dtype=np.int64)
        done_before = np.concatenate([[0], cost])[first]
        del cost
        cut = np.flatnonzero(np.diff(done_before // max(1, max_vertices)) > 0) + 1
        bounds = [0, *cut.tolist(), len(comps)]
        ring_at = [*first.tolist(), len(keep)]
        for c0, c1 in itertools.pairwise(bounds):
            k = keep[ring_at[c0] : ring_at[c1]]
            polys = self._polygons(
                x,
                y,
                starts[k],
                sizes[k],
                kept_comp[ring_at[c0] : ring_at[c1]],
                comps[c0:c1],
                transform,
                origin,
            )
            yield comps[c0:c1].astype(np.int64) + first_comp, polys

    @staticmethod
    def _polygons(
        x: NDArray[np.int32],
        y: NDArray[np.int32],
        ring_start: NDArray[np.signedinteger],
        n_take: NDArray[np.signedinteger],
        ring_comp: NDArray[np.int64],
        comps: NDArray[np.int64],
        transform: Affine,
        origin: tuple[int, int],
    ) -> NDArray[np.object_]:
        """The polygons of ``comps`` from their rings (by component, shell first; vertices
        ``x, y`` from ``ring_start``, ``n_take`` of them)."""
        # each ring from its first vertex; backwards where the grid mirrors pixel space (a
        # north-up grid: rows grow south), so shells turn counter-clockwise on the map
        # (as GDAL writes them, and as GeoJSON wants them) and holes clockwise
        within = np.arange(int(n_take.sum()), dtype=ring_start.dtype)
        within -= np.repeat(np.cumsum(n_take) - n_take, n_take)
        t = transform
        if t.a * t.e - t.b * t.d < 0:
            within = (np.repeat(n_take, n_take) - within) % np.repeat(n_take, n_take)
        take = np.repeat(ring_start, n_take) + within
        del within
        xy = np.empty((len(take), 2))
        xk = x[take].astype(np.float64) + origin[1]
        yk = y[take].astype(np.float64) + origin[0]
        del take
        xy[:, 0] = t.c + xk * t.a + yk * t.b
        xy[:, 1] = t.f + xk * t.d + yk * t.e
        del xk, yk
        ring = np.repeat(np.arange(len(n_take)), n_take)
        rings = shapely.linearrings(xy, indices=ring)
        del xy, ring
        polys = shapely.polygons(rings, indices=np.searchsorted(comps, ring_comp))
        return np.asarray(polys, dtype=object)


def _index_type(n: int) -> type[np.signedinteger]:
    """int32 for indices below 2^31 (half the memory), else int64."""
    return np.int32 if n < 2**31 - 4 else np.int64


def _saddle_outlines(code: NDArray[np.uint8]) -> NDArray[np.int64]:
    """The outlines (numbered as :func:`_successors` numbers them) arriving at saddles, in
    pairs (the first, the second of each saddle)."""
    n = _COUNT[code]
    first = np.cumsum(n, dtype=np.int64)[n == 2] - 2
    return np.stack([first, first + 1], axis=1).ravel()


def _successors(
    cols: NDArray[np.int32], code: NDArray[np.uint8], saddle_comp: NDArray[np.int64]
) -> tuple[NDArray[np.signedinteger], NDArray[np.signedinteger]]:
    """Per outline arriving at a vertex (vertices row-major, one outline each, two at a
    saddle): its vertex, and the outline it continues as at the next vertex.
    ``saddle_comp``: the component of the ice beside each saddle's outlines, in pairs."""
    nv = len(code)
    itype = _index_type(2 * nv)
    n = _COUNT[code]
    node_start = np.cumsum(n, dtype=itype)
    node_start -= n
    nn = int(node_start[-1]) + int(n[-1])
    vx = np.repeat(np.arange(nv, dtype=itype), n)
    second = np.zeros(nn, bool)  # the second outline arriving at a saddle
    pairs = saddle_comp.reshape(-1, 2)
    first = node_start[n == 2]
    second[first + 1] = True
    out = _TABLE[code[vx], second.view(np.int8), 1]  # the saddle's pixels kept apart
    joined = (pairs[:, 0] == pairs[:, 1]) & (pairs[:, 0] >= 0)
    for k in (0, 1):  # of one component: the outlines cross to the other pixel
        at = first[joined] + k
        out[at] = _TABLE[code[vx[at]], k, 2]
    # the next vertex along the outgoing direction: along the row, or the column
    nxt = vx.copy()
    nxt[out == RIGHT] += 1
    nxt[out == LEFT] -= 1
    bycol = np.argsort(cols, kind="stable").astype(itype)  # rows ascending per column
    colpos = np.empty(nv, itype)
    colpos[bycol] = np.arange(nv, dtype=itype)
    for direction, step in ((DOWN, 1), (UP, -1)):
        sel = out == direction
        nxt[sel] = bycol[colpos[vx[sel]] + step]
    del bycol, colpos
    # the outline arriving there from that direction: the second at a saddle if it is its
    arrives_second = (n[nxt] == 2) & (_TABLE[code[nxt], 1, 0] == out)
    succ = node_start[nxt] + arrives_second
    if not np.array_equal(_TABLE[code[nxt], arrives_second.view(np.int8), 0], out):
        raise AssertionError("an outline leads to a corner where none arrives")
    return vx, succ.astype(itype, copy=False)


def _rings(
    succ: NDArray[np.signedinteger],
) -> tuple[NDArray[np.signedinteger], NDArray[np.signedinteger]]:
    """The cycles of the permutation ``succ``: all elements in cycle order, each cycle from
    its smallest element, cycles by their smallest element; and the positions where the
    cycles start."""
    n = len(succ)
    itype = succ.dtype
    step = np.arange(n + 1, dtype=itype)
    graph = csr_matrix((np.ones(n, np.int8), succ, step), shape=(n, n))
    _, label = connected_components(graph, directed=True, connection="weak")
    del graph
    firsts = np.full(int(label.max()) + 1, n, itype)
    np.minimum.at(firsts, label, step[:-1])
    del label
    firsts.sort()
    path = succ.copy()  # the cycles chained into one path: each cycle's end to the next start
    pred = np.empty(n, itype)
    pred[succ] = step[:-1]
    ends = pred[firsts]
    del pred
    path[ends[:-1]] = firsts[1:]
    has = np.ones(n, bool)
    has[ends[-1]] = False
    indptr = np.zeros(n + 1, itype)
    np.cumsum(has, out=indptr[1:])
    chain = csr_matrix((np.ones(n - 1, np.int8), path[has], indptr), shape=(n, n))
    del path, has, indptr
    order = depth_first_order(chain, int(firsts[0]), directed=True, return_predecessors=False)
    if len(order) != n:
        raise AssertionError("the outlines do not chain into rings")
    is_first = np.zeros(n, bool)
    is_first[firsts] = True
    return order.astype(itype, copy=False), np.flatnonzero(is_first[order]).astype(itype)


def trace_labels(
    labels: NDArray[np.int32], transform: Affine, origin: tuple[int, int] = (0, 0)
) -> NDArray[np.object_]:
    """One polygon per label 1..n of ``labels`` (4-connected components, one label each;
    the window at ``origin`` of a grid with ``transform``), traced on the whole array."""
    n = int(labels.max()) if labels.size else 0
    tracer = RingTracer(labels.shape)
    tracer.add(0, labels, 1)
    comps, polys = tracer.finish(np.arange(-1, n, dtype=np.int64), transform, origin)
    out = np.empty(n, dtype=object)
    out[comps] = polys
    return out


def trace_pieces(
    labels: NDArray[np.int32], transform: Affine, origin: tuple[int, int], n: int
) -> NDArray[np.object_]:
    """One geometry per label 1..n of ``labels`` (the window at ``origin`` of a grid with
    ``transform``), each traced in its own bounding box: a polygon, or a multipolygon of
    its 4-connected parts in raster order (labels may touch each other and be in parts, as
    glaciers split from a complex are); None for a label without pixels."""
    out = np.empty(n, dtype=object)
    for k, box in enumerate(ndimage.find_objects(labels, max_label=n)):
        if box is None:
            continue
        parts, count = ndimage.label(labels[box] == k + 1)
        at = (origin[0] + box[0].start, origin[1] + box[1].start)
        polys = trace_labels(np.asarray(parts, np.int32), transform, at)
        out[k] = polys[0] if count == 1 else shapely.multipolygons(polys)
    return out
