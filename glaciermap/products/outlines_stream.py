"""Bounded-memory building blocks of :mod:`glaciermap.products.outlines`.

A binary raster is processed in row *stripes*: its connected components (4-connectivity,
as :func:`scipy.ndimage.label`) are found stripe by stripe and joined across the stripe
seams, keeping per component only its size, bounding box, first pixel and whether it
touches the raster border, so memory is one stripe plus O(number of components). The masks
between the clean-up steps live in a bit-packed temporary file (1 bit per pixel) that has no
name on disk and disappears when closed or when the process dies.

:func:`stream_complexes` runs the clean-up of :func:`~glaciermap.products.outlines.clean_mask`
this way (smoothing, removal of small patches, filling of small holes) and returns the
complexes of the final mask, numbered like :func:`scipy.ndimage.label` numbers them on the
whole array (raster-scan order of their first pixels); the final mask stays in the store
when one is given.
"""

from __future__ import annotations

import contextlib
import mmap
import os
import tempfile
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import TypeVar

import numpy as np
from numpy.typing import NDArray
from scipy import ndimage
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components

T = TypeVar("T")
T_num = TypeVar("T_num", bound=np.generic)
STRIPE_PIXELS = 1 << 20  # default stripe size (pixels, halo included): ~1 M, 4 MB of float32


def write_at(fd: int, data: bytes, offset: int) -> None:
    """Write all of ``data`` at ``offset`` of the file ``fd`` (positional I/O)."""
    view, done = memoryview(data), 0
    while done < len(view):
        done += os.pwrite(fd, view[done:], offset + done)


def read_at(fd: int, n: int, offset: int) -> bytearray:
    """``n`` bytes at ``offset`` of the file ``fd`` (positional I/O; pread may return fewer
    bytes than asked for, so it loops, and an early end of file raises)."""
    buf = bytearray(n)
    view, got = memoryview(buf), 0
    while got < n:
        k = os.preadv(fd, [view[got:]], offset + got)
        if k <= 0:
            raise OSError(f"temporary file ends at byte {offset + got}, {n - got} short")
        got += k
    return buf


class PackedMask:
    """A binary raster of ``shape`` in an anonymous temporary file (1 bit per pixel, rows
    padded to whole bytes) in folder ``folder`` (None: the system's temporary folder). Rows are
    written and read with positional I/O, windows through a short-lived memory map, so none
    of it stays in the process's memory. Use as a context manager (or call :meth:`close`)."""

    def __init__(self, shape: tuple[int, int], folder: str | os.PathLike[str] | None = None):
        self.shape = shape
        self.rowbytes = (shape[1] + 7) // 8
        self._file = tempfile.TemporaryFile(dir=folder)
        self._fd = self._file.fileno()
        os.ftruncate(self._fd, max(1, shape[0] * self.rowbytes))

    def __enter__(self) -> PackedMask:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Close (and so delete) the file."""
        self._file.close()

    def write_rows(self, r0: int, rows: NDArray[np.bool_]) -> None:
        """Store ``rows`` (full width) as raster rows ``r0, r0 + 1, ...``."""
        write_at(self._fd, np.packbits(rows, axis=1).tobytes(), r0 * self.rowbytes)

    def read_rows(self, r0: int, r1: int) -> NDArray[np.bool_]:
        """Raster rows ``r0:r1`` (full width)."""
        buf = read_at(self._fd, (r1 - r0) * self.rowbytes, r0 * self.rowbytes)
        packed = np.frombuffer(buf, np.uint8).reshape(r1 - r0, self.rowbytes)
        return np.unpackbits(packed, axis=1, count=self.shape[1]).view(bool)

    def read_window(self, rows: slice, cols: slice) -> NDArray[np.bool_]:
        """The window ``[rows, cols]`` (slices with explicit start and stop)."""
        r0, r1, c0, c1 = int(rows.start), int(rows.stop), int(cols.start), int(cols.stop)
        b0, b1 = c0 // 8, (c1 + 7) // 8
        if 4 * (b1 - b0) >= self.rowbytes:  # wide: whole rows are as cheap
            return self.read_rows(r0, r1)[:, c0:c1].copy()
        start = (r0 * self.rowbytes) // mmap.ALLOCATIONGRANULARITY * mmap.ALLOCATIONGRANULARITY
        length = r1 * self.rowbytes - start
        with mmap.mmap(self._fd, length, access=mmap.ACCESS_READ, offset=start) as mm:
            arr = np.frombuffer(
                mm, np.uint8, count=(r1 - r0) * self.rowbytes, offset=r0 * self.rowbytes - start
            )
            packed = arr.reshape(r1 - r0, self.rowbytes)[:, b0:b1].copy()
            del arr
        bits = np.unpackbits(packed, axis=1).view(bool)
        return bits[:, c0 - 8 * b0 : c1 - 8 * b0].copy()


@dataclass
class Components:
    """Connected components (numbered 1..n in raster-scan order of their first pixel):
    ``size`` in pixels, bounding box ``row0, row1, col0, col1`` (stop exclusive), first
    pixel ``seed_row, seed_col``, and ``border`` (touches the raster border)."""

    size: NDArray[np.int64]
    row0: NDArray[np.int64]
    row1: NDArray[np.int64]
    col0: NDArray[np.int64]
    col1: NDArray[np.int64]
    seed_row: NDArray[np.int64]
    seed_col: NDArray[np.int64]
    border: NDArray[np.bool_]

    def __len__(self) -> int:
        return len(self.size)

    def select(self, keep: NDArray[np.bool_]) -> Components:
        """The components where ``keep`` (their order kept)."""
        return Components(*(getattr(self, f)[keep] for f in self.__dataclass_fields__))


class StreamLabeler:
    """Connected components (4-connectivity) of a binary raster fed as consecutive row
    stripes (:meth:`add`); :meth:`finish` joins the pieces that meet across stripe seams.

    Each stripe's pieces get *provisional* ids (``ndimage.label`` of the stripe, offset by
    the pieces of the stripes before); the stripe's ``base`` offset is kept, so a later pass
    that labels the same stripe again maps its labels to the same ids. ``bbox=False`` skips
    the bounding boxes (a per-piece Python step) and first pixels, ``seeds=False`` the first
    pixels, when they are not needed.
    """

    def __init__(self, shape: tuple[int, int], bbox: bool = True, seeds: bool = True):
        self.shape = shape
        self.bbox = bbox
        self.seeds = seeds
        self.n = 0
        self.bases: dict[int, int] = {}
        self.last_stats = np.zeros((0, 8), np.int64)  # the last stripe's pieces
        self.last_pairs = np.zeros((2, 0), np.int64)  # and their joins to the stripe above
        self.last_pairs_at = -1
        self._stats: list[NDArray[np.int64]] = []
        self._edges: list[NDArray[np.int64]] = []
        self._prev: tuple[int, NDArray[np.int64]] | None = None  # (next row, last row's ids)

    def add(self, r0: int, rows: NDArray[np.bool_]) -> tuple[NDArray[np.int32], int]:
        """Label the stripe ``rows`` (raster rows ``r0:r0 + len(rows)``, fed in order);
        returns its local labels (1..k, 0 = background; provisional id = base + label - 1)
        and k."""
        height, width = self.shape
        lab, k = ndimage.label(rows)
        lab = np.asarray(lab, np.int32)
        base = self.n
        self.bases[r0] = base
        h = lab.shape[0]
        self.last_stats = np.zeros((0, 8), np.int64)
        if k:
            flat = lab.ravel()
            stats = np.zeros((k, 8), np.int64)
            # counted over the foreground only: a third of the time on a 20 % ice stripe
            stats[:, 0] = np.bincount(flat[np.asarray(rows).ravel()], minlength=k + 1)[1:]
            if self.bbox:
                stats[:, 1:5] = [
                    (s[0].start, s[0].stop, s[1].start, s[1].stop)
                    for s in ndimage.find_objects(lab)
                ]
                stats[:, 1:3] += r0
            if self.bbox and self.seeds:
                # labels appear in raster order: a label's first pixel is where the running
                # maximum of the labels rises
                cm = np.maximum.accumulate(flat)
                first = np.flatnonzero(cm[1:] != cm[:-1]) + 1
                del cm
                if flat[0]:
                    first = np.concatenate([[0], first])
                stats[:, 5], stats[:, 6] = np.divmod(first, width)
                stats[:, 5] += r0
            edge = [lab[:, 0], lab[:, -1]]
            if r0 == 0:
                edge.append(lab[0])
            if r0 + h == height:
                edge.append(lab[-1])
            touching = np.concatenate(edge)
            stats[touching[touching > 0] - 1, 7] = 1  # repeated indices: no sort needed
            # kept for finish: without boxes only the sizes and borders (16 bytes a piece)
            self._stats.append(stats if self.bbox else stats[:, [0, 7]])
            self.last_stats = stats
        ids = np.where(lab[0] > 0, lab[0].astype(np.int64) + (base - 1), -1)
        if self._prev is not None and self._prev[0] == r0:
            above = self._prev[1]
            both = (above >= 0) & (ids >= 0)
            if both.any():
                a, b = above[both], ids[both]
                new = np.ones(len(a), bool)  # runs along the seam: one pair each, then unique
                new[1:] = (a[1:] != a[:-1]) | (b[1:] != b[:-1])
                pairs = np.unique(np.stack([a[new], b[new]]), axis=1)
                self._edges.append(pairs)
                self.last_pairs, self.last_pairs_at = pairs, r0
        last = np.where(lab[-1] > 0, lab[-1].astype(np.int64) + (base - 1), -1)
        self._prev = (r0 + h, last)
        self.n += k
        return lab, k

    def finish(self) -> tuple[Components, NDArray[np.int64]]:
        """The components, and for each provisional id its component's index (0-based)."""
        n = self.n
        cols = 8 if self.bbox else 2  # without boxes: sizes and borders
        stats = np.concatenate(self._stats) if self._stats else np.zeros((0, cols), np.int64)
        if self._edges:
            e = np.concatenate(self._edges, axis=1)
            graph = coo_matrix((np.ones(e.shape[1], np.int32), (e[0], e[1])), shape=(n, n))
            ncomp, comp = connected_components(graph, directed=False)
            comp = comp.astype(np.int64)
            first_id = np.full(ncomp, n, np.int64)
            np.minimum.at(first_id, comp, np.arange(n))
            order = np.argsort(first_id)  # by first piece = by first pixel
            rank = np.empty(ncomp, np.int64)
            rank[order] = np.arange(ncomp)
            comp = rank[comp]
            firsts = first_id[order]  # the first piece of each component
        else:
            ncomp, comp = n, np.arange(n, dtype=np.int64)
            firsts = comp
        size = np.bincount(comp, weights=stats[:, 0], minlength=ncomp).astype(np.int64)
        border = np.bincount(comp, weights=stats[:, -1], minlength=ncomp) > 0
        lo = np.zeros((ncomp, 2), np.int64)  # boxes and first pixels: 0 when not kept
        hi = np.zeros((ncomp, 2), np.int64)
        seeds = np.zeros((ncomp, 2), np.int64)
        if self.bbox:
            lo[:] = np.iinfo(np.int64).max
            hi[:] = -1
            np.minimum.at(lo, comp, stats[:, [1, 3]])
            np.maximum.at(hi, comp, stats[:, [2, 4]])
            seeds = stats[firsts][:, [5, 6]]
        comps = Components(
            size=size,
            row0=lo[:, 0],
            row1=hi[:, 0],
            col0=lo[:, 1],
            col1=hi[:, 1],
            seed_row=seeds[:, 0],
            seed_col=seeds[:, 1],
            border=border,
        )
        return comps, comp


class CompleteComponents:
    """Which components of a labelling fed stripe by stripe are complete, as the stripes
    come (a union-find over the provisional ids of :class:`StreamLabeler`).

    Per stripe (:meth:`add`): its pieces' sizes and value sums, the pairs of ids that join
    across the seam above, and the ids in its last row. A component not in a stripe's last
    row is complete: no stripe to come can add to it. Components are numbered 0, 1, ... as
    :meth:`StreamLabeler.finish` numbers them (by their first piece, so by first pixel),
    those under ``min_px`` pixels left out: a component's number is known once it and every
    component with an earlier first piece are complete, which ids below :attr:`frontier` are.
    Memory: 24 bytes per piece, 16 per component."""

    def __init__(self, min_px: float = 0.0):
        self.min_px = min_px
        self.n = 0  # ids so far
        self.frontier = 0  # ids below it: in complete, numbered components
        self.count = 0  # components numbered (and kept) so far
        self._parent = np.zeros(1024, np.int64)
        self._size = np.zeros(1024, np.int64)
        self._sum = np.zeros(1024, np.float64)
        self._number = np.zeros(1024, np.int64)  # of a root below the frontier (-1: left out)
        self.size = np.zeros(1024, np.int64)  # per component number
        self.mean = np.zeros(1024, np.float64)

    def find(self, ids: NDArray[np.int64]) -> NDArray[np.int64]:
        """The root (first piece) of each id's component so far."""
        parent = self._parent
        r = parent[ids]
        while True:
            up = parent[r]
            if np.array_equal(up, r):
                break
            r = up
        parent[ids] = r  # shorter paths next time
        return r

    def add(
        self,
        base: int,
        sizes: NDArray[np.int64],
        sums: NDArray[np.float64],
        pairs: NDArray[np.int64],
        last_row: NDArray[np.int64] | None,
    ) -> None:
        """The stripe whose pieces have the ids ``base, base + 1, ...`` (in order, from
        ``self.n`` on) with ``sizes`` pixels and value ``sums``; ``pairs`` ``(2, m)`` of ids
        (above, here) joined across its top seam; ``last_row``: the ids in its last row
        (None: the last stripe, after which every component is complete)."""
        k = len(sizes)
        if base != self.n:
            raise ValueError(f"stripe with ids from {base}, expected {self.n}")
        n = base + k
        if n > len(self._parent):
            cap = max(n, 2 * len(self._parent))
            self._parent = _grown(self._parent, cap)
            self._size = _grown(self._size, cap)
            self._sum = _grown(self._sum, cap)
            self._number = _grown(self._number, cap)
        self._parent[base:n] = np.arange(base, n)
        self._size[base:n] = sizes
        self._sum[base:n] = sums
        self.n = n
        if pairs.shape[1]:
            a, b = self.find(pairs[0]), pairs[1]
            nodes, at = np.unique(np.concatenate([a, b]), return_inverse=True)
            m = len(a)
            graph = coo_matrix(
                (np.ones(m, np.int8), (at[:m], at[m:])), shape=(len(nodes), len(nodes))
            )
            _, group = connected_components(graph, directed=False)
            root = np.full(int(group.max()) + 1, n, np.int64)
            np.minimum.at(root, group, nodes)
            new_root = root[group]
            moved = nodes != new_root
            src, dst = nodes[moved], new_root[moved]
            np.add.at(self._size, dst, self._size[src])
            np.add.at(self._sum, dst, self._sum[src])
            self._parent[src] = dst
        if last_row is None:
            frontier = n
        else:
            open_roots = self.find(last_row)
            frontier = int(open_roots.min()) if len(open_roots) else n
        self._number_up_to(frontier)

    def _number_up_to(self, frontier: int) -> None:
        if frontier <= self.frontier:
            return
        span = np.arange(self.frontier, frontier)
        roots = span[self._parent[span] == span]
        kept = roots[self._size[roots] >= self.min_px]
        numbers = self.count + np.arange(len(kept))
        self._number[roots] = -1
        self._number[kept] = numbers
        c = self.count + len(kept)
        if c > len(self.size):
            cap = max(c, 2 * len(self.size))
            self.size, self.mean = _grown(self.size, cap), _grown(self.mean, cap)
        self.size[self.count : c] = self._size[kept]
        self.mean[self.count : c] = self._sum[kept] / self._size[kept]
        self.count, self.frontier = c, frontier

    def status(self, ids: NDArray[np.int64]) -> NDArray[np.int64]:
        """Per id: its component's number (complete and numbered), -1 (complete, left out)
        or -2 (not numbered yet)."""
        r = self.find(ids)
        return np.where(r < self.frontier, self._number[np.minimum(r, self.frontier - 1)], -2)


def _grown(a: NDArray[T_num], n: int) -> NDArray[T_num]:
    """``a`` in a new array of length ``n`` (the rest zero)."""
    out = np.zeros(n, a.dtype)
    out[: len(a)] = a
    return out


@dataclass
class Complexes:
    """The complexes of the final mask, numbered 0..n-1 here (1..n by ``ndimage.label``):
    ``comps``, and for each provisional id of the labelling pass that found them (the ids
    :data:`Visit` gets) its complex (-1: a patch removed as too small)."""

    comps: Components
    complex_of: NDArray[np.int64]


@dataclass
class Stripe:
    """A stripe of the final labelling pass, as :func:`stream_complexes` shows it to its
    ``visit``: raster rows ``r0:r0 + len(labels)``, labels 1..k (provisional ids
    ``base + label - 1``), which labels (index 0..k) are whole complexes lying in the stripe,
    each label's ``stats`` (:class:`StreamLabeler` columns: size, row0, row1, col0, col1,
    first pixel row and column, border), the ``pairs`` of provisional ids (above, here) that
    join across the seam above, and the stripe's probability when at hand (else None)."""

    r0: int
    labels: NDArray[np.int32]
    base: int
    whole: NDArray[np.bool_]
    stats: NDArray[np.int64]
    pairs: NDArray[np.int64]
    probability: NDArray[np.float32] | None


Visit = Callable[[Stripe], None]


def stripes(height: int, stripe_rows: int) -> Iterator[tuple[int, int]]:
    """Row ranges ``(r0, r1)`` of consecutive stripes of ``stripe_rows`` rows."""
    for r0 in range(0, height, stripe_rows):
        yield r0, min(height, r0 + stripe_rows)


def _whole(
    lab: NDArray[np.int32], k: int, r0: int, height: int, keep: NDArray[np.bool_] | None
) -> NDArray[np.bool_]:
    """Which labels 0..k of a stripe are whole components: not touching a stripe edge that
    is not a raster edge (and, with ``keep``, kept)."""
    whole = np.ones(k + 1, bool) if keep is None else np.concatenate([[False], keep])
    whole[0] = False
    if r0 > 0:
        whole[lab[0]] = False
    if r0 + len(lab) < height:
        whole[lab[-1]] = False
    return whole


def _stripe(
    labeler: StreamLabeler,
    r0: int,
    lab: NDArray[np.int32],
    whole: NDArray[np.bool_],
    p: NDArray[np.float32] | None,
) -> Stripe:
    pairs = labeler.last_pairs if labeler.last_pairs_at == r0 else np.zeros((2, 0), np.int64)
    return Stripe(r0, lab, labeler.bases[r0], whole, labeler.last_stats, pairs, p)


def prefetched(
    make: Callable[[int, int], T], args: list[tuple[int, int]]
) -> Iterator[tuple[tuple[int, int], T]]:
    """``(arg, make(*arg))`` for each of ``args`` in order, each made in a worker thread
    while the caller works on the one before (one ahead at most). A failure is raised
    where its result is due; leaving the loop early waits for the one under way."""
    if len(args) < 2:
        for arg in args:
            yield arg, make(*arg)
        return
    with ThreadPoolExecutor(1, thread_name_prefix="stripe") as pool:
        ahead: Future[T] = pool.submit(make, *args[0])
        try:
            for k, arg in enumerate(args):
                got = ahead.result()
                if k + 1 < len(args):
                    ahead = pool.submit(make, *args[k + 1])
                yield arg, got
        finally:
            ahead.cancel()


@contextlib.contextmanager
def one_behind(fn: Callable[[Stripe], None] | None) -> Iterator[Callable[[Stripe], None] | None]:
    """``fn`` called in a worker thread, one call at a time and in order, while the caller
    goes on (the caller waits for the call before when it makes the next, so one stripe is
    in flight at most); all calls are done (and a failure raised) when the block ends."""
    if fn is None:
        yield None
        return
    with ThreadPoolExecutor(1, thread_name_prefix="visit") as pool:
        last: list[Future[None]] = []

        def call(stripe: Stripe) -> None:
            if last:
                last.pop().result()
            last.append(pool.submit(fn, stripe))

        try:
            yield call
        finally:
            while last:
                last.pop().result()


def final_pass_min_px(min_px: float, max_hole_px: float) -> float:
    """The size under which :func:`stream_complexes`'s final labelling pass (the stripes
    ``visit`` sees) leaves patches out: ``min_px`` where no holes are filled (that pass
    removes them), else 0 (an earlier pass did, before the holes were filled)."""
    return 0.0 if max_hole_px > 1 else min_px


def stream_complexes(
    read_rows: Callable[[int, int], NDArray[np.float32]],
    shape: tuple[int, int],
    threshold: float,
    smooth: Callable[[NDArray[np.bool_]], NDArray[np.bool_]] | None,
    halo: int,
    min_px: float,
    max_hole_px: float,
    store: PackedMask | None,
    stripe_rows: int,
    visit: Visit | None = None,
    boxes: bool = True,
) -> Complexes:
    """Threshold, clean up and label a probability raster in stripes, exactly as
    :func:`~glaciermap.products.outlines.clean_mask` then ``ndimage.label`` on the whole array.

    ``read_rows(r0, r1)``: the probability of rows ``r0:r1`` (NaN already replaced).
    ``smooth``: the opening-closing of a (stripe) mask with ``mode="nearest"``, exact on rows
    at least ``halo`` rows from a stripe edge that is not a raster edge (None: no smoothing).
    Patches under ``min_px`` pixels are removed, holes (background not connected to the
    raster border) under ``max_hole_px`` pixels filled. Leaves the final mask in ``store``
    (None: not kept; filling holes needs it) and returns its complexes; ``visit`` is called
    on each stripe of the final labelling, in order, in a worker thread while the next stripe
    is labelled (in the first pass, ``read_rows`` runs in another one: ``visit`` must not
    read what ``read_rows`` reads there, and gets the stripe's probability instead).
    ``boxes=False`` skips the complexes' bounding boxes and first pixels (all 0 then, also
    in the stripes' ``stats``).
    """
    height, _ = shape
    remove = min_px > 1  # every patch has at least one pixel
    fill = max_hole_px > 1
    if fill and store is None:
        raise ValueError("filling holes needs a store for the mask")
    fg = StreamLabeler(shape, bbox=boxes and not fill, seeds=boxes and not fill)

    def cleaned(r0: int, r1: int) -> tuple[int, NDArray[np.float32], NDArray[np.bool_]]:
        a, b = max(0, r0 - halo), min(height, r1 + halo)
        p = read_rows(a, b)
        m = p >= threshold
        if smooth is not None:
            m = smooth(m)
        return a, p, np.ascontiguousarray(m[r0 - a : r1 - a])

    # the next stripe is read and cleaned in a second thread meanwhile (GDAL and numpy
    # release the GIL; read_rows is only ever called from that thread in this pass), and
    # visit runs in a third one on the stripe before the one being labelled
    with one_behind(None if fill else visit) as call:
        for (r0, r1), (a, p, core) in prefetched(cleaned, list(stripes(height, stripe_rows))):
            if store is not None:
                store.write_rows(r0, core)
            if remove or not fill:
                lab, k = fg.add(r0, core)
                if call is not None:
                    keep = fg.last_stats[:, 0] >= min_px if remove else None
                    whole = _whole(lab, k, r0, height, keep)
                    call(_stripe(fg, r0, lab, whole, p[r0 - a : r1 - a]))
    if not fill:  # the patches kept are the complexes
        comps, comp = fg.finish()
        if not remove:
            return Complexes(comps, comp)
        keep = comps.size >= min_px
        index = np.where(keep, np.cumsum(keep) - 1, -1)
        return Complexes(comps.select(keep), index[comp])
    assert store is not None  # checked above
    small = np.zeros(0, bool)  # by provisional id
    if remove:
        pieces, piece_comp = fg.finish()
        small = (pieces.size < min_px)[piece_comp]

    def without_small(r0: int, m: NDArray[np.bool_]) -> NDArray[np.bool_]:
        if not remove:
            return m
        lab, k = ndimage.label(m)
        base = fg.bases[r0]
        return m & ~np.concatenate([[False], small[base : base + k]])[lab]

    bg = StreamLabeler(shape, bbox=False)
    for r0, r1 in stripes(height, stripe_rows):
        bg.add(r0, ~without_small(r0, store.read_rows(r0, r1)))
    holes, hole_comp = bg.finish()
    filled = ((~holes.border) & (holes.size < max_hole_px))[hole_comp]
    cx = StreamLabeler(shape, bbox=boxes, seeds=boxes)
    with one_behind(visit) as call:
        for r0, r1 in stripes(height, stripe_rows):
            m = without_small(r0, store.read_rows(r0, r1))
            lab, k = ndimage.label(~m)
            base = bg.bases[r0]
            m |= np.concatenate([[False], filled[base : base + k]])[lab]
            store.write_rows(r0, m)
            lab, k = cx.add(r0, m)
            if call is not None:
                call(_stripe(cx, r0, lab, _whole(lab, k, r0, height, None), None))
    comps, comp = cx.finish()
    return Complexes(comps, comp)
