"""Cutting feature stacks into chips with a spatial train/val/test split, and the pixel
store that training draws random patches from.

The region is covered whole: it is padded (NaN features, ``IGNORE`` labels) to a multiple of
``tile_size``, and chips of ``tile_size`` pixels are grouped into square blocks of
``block_tiles`` x ``block_tiles`` chips; whole blocks go to one split (held-out blocks spread
over the region by a seeded stratified draw, :func:`assign_blocks`), so neighbouring chips
rarely straddle splits (spatial block cross-validation). Chips with less than ``min_valid``
valid pixels are dropped from the index (they stay in the pixel store).

Written to ``dest_dir``:

* ``features.npy`` (N, C, T, T) float32 (NaN where invalid), ``labels.npy`` (N, T, T) uint8
  (255 where invalid or unlabelled) and ``index.csv`` (one row per chip: tile_id, split,
  region, year, row, col, left, bottom, right, top): the fixed chips, used for validation,
  test metrics and the forest's cross-validation groups;
* ``area_features.npy`` (C, P) float32, ``area_labels.npy`` (P,) uint8 and ``area_split.npy``
  (P,) uint8: every padded pixel of every member, member after member (row-major), with its
  split code (:data:`SPLIT_CODES`; ``BUFFER`` for train pixels within ``buffer_px`` of a
  val/test block, which no model trains on, so labels next to held-out pixels never teach a
  model). Training draws patches at random positions from it every epoch (memory-mapped: a
  store larger than memory trains);
* ``meta.json``: layer names, tile size, and per member its padded shape and pixel offset.
"""

from __future__ import annotations

import itertools
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from numpy.typing import NDArray
from rasterio.windows import Window
from scipy import ndimage

from glaciermap.core.errors import InputDataError
from glaciermap.core.grid import check_same_grid, grid_of
from glaciermap.core.io import (
    PathLike,
    atomic_path,
    band_names,
    names_unreadable_rasters,
    open_raster,
    write_json,
)
from glaciermap.ml.features import VALID, stack_layers

log = logging.getLogger(__name__)

IGNORE = 255
SPLITS = ("train", "val", "test")
# Pixel split codes of the store; BUFFER: a train pixel too close to a held-out block.
SPLIT_CODES = {"train": 0, "val": 1, "test": 2}
BUFFER = 3


@dataclass(frozen=True)
class TileSource:
    """One region/year's feature stack and label raster, from which training tiles are cut."""

    region: str
    year: int
    features: Path
    labels: Path


def assign_blocks(
    n_rows: int, n_cols: int, val_frac: float, test_frac: float, seed: int
) -> NDArray[np.str_]:
    """Split name per block (n_rows, n_cols), with the held-out blocks spread over the region.

    The blocks are ordered along a serpentine path (row by row, every other row reversed, so
    consecutive blocks are neighbours), the path is cut into ``n_test + n_val`` runs of
    near-equal length, and one block drawn at random (seeded) from each run is held out; along
    the path the held-out blocks go to test and val in turn, in proportion to their counts.
    So both val and test sample the whole region, its valleys and its ridges, instead of a
    corner that a plain shuffle of a few dozen blocks often gives. Why it matters: with 4 test
    blocks on the 30 m four-band test region, a shuffle put half of the test chips in one
    cluster, and the seeds' test mIoU then measured that cluster (one chip held 40 % of one
    seed's errors); a validation set in one corner likewise selects the epoch that suits the
    corner. The same holds for a continental region, where a shuffle is spread already and the
    strata only make sure of it.
    """
    n = n_rows * n_cols
    rng = np.random.default_rng(seed)
    n_test = max(1, round(test_frac * n)) if test_frac > 0 and n >= 3 else 0
    n_val = max(1, round(val_frac * n)) if val_frac > 0 and n >= 3 else 0
    while n_test + n_val > n - 1 and (n_test or n_val):  # keep at least one train block
        if n_val >= n_test:
            n_val -= 1
        else:
            n_test -= 1
    grid = np.arange(n).reshape(n_rows, n_cols)
    grid[1::2] = grid[1::2, ::-1]
    path = grid.ravel()  # block numbers (row-major) in serpentine order
    n_held = n_test + n_val
    split = np.full(n, "train", dtype="<U5")
    if n_held:
        edges = np.linspace(0, n, n_held + 1).round().astype(int)
        picks = [path[rng.integers(a, b)] for a, b in itertools.pairwise(edges)]
        # test at the runs where the running share of test blocks steps up (Bresenham), from a
        # random phase, so test and val interleave whatever their counts
        phase = rng.random()
        is_test = np.diff(np.floor(phase + np.arange(n_held + 1) * n_test / n_held)) > 0
        for block, test in zip(picks, is_test, strict=True):
            split[block] = "test" if test else "val"
    return split.reshape(n_rows, n_cols)


def buffer_mask(split_px: NDArray[np.uint8], buffer_px: int) -> NDArray[np.bool_]:
    """Train pixels within ``buffer_px`` (chessboard distance) of a val or test pixel."""
    if buffer_px <= 0:
        return np.zeros(split_px.shape, dtype=bool)
    held_out = (split_px == SPLIT_CODES["val"]) | (split_px == SPLIT_CODES["test"])
    near = ndimage.maximum_filter(held_out, size=2 * buffer_px + 1, mode="constant")
    return near & (split_px == SPLIT_CODES["train"])


def _split_window(
    codes: NDArray[np.uint8], span: int, r0: int, c0: int, h: int, w: int, shape: tuple[int, int]
) -> NDArray[np.uint8]:
    """Pixel split codes of the window (r0, c0, h, w) from the block codes (each block
    ``span`` px); pixels outside the padded member ``shape`` get 255 (neither train nor held
    out), which is what the buffer's constant-mode filter sees beyond the edge."""
    rows, cols = np.arange(r0, r0 + h), np.arange(c0, c0 + w)
    out = np.full((h, w), 255, dtype=np.uint8)
    ri, ci = (rows >= 0) & (rows < shape[0]), (cols >= 0) & (cols < shape[1])
    out[np.ix_(ri, ci)] = codes[np.ix_(rows[ri] // span, cols[ci] // span)]
    return out


@names_unreadable_rasters
def make_tiles(
    sources: Sequence[TileSource],
    dest_dir: PathLike,
    tile_size: int,
    block_tiles: int = 4,
    val_frac: float = 0.15,
    test_frac: float = 0.15,
    min_valid: float = 0.5,
    seed: int = 0,
    buffer_px: int = 16,
    chunk_px: int = 2048,
) -> pd.DataFrame:
    """Cut chips from every source and write the pixel store; returns the index table.

    Everything is streamed: the sources are read in windows of one chip row by at most
    ``chunk_px`` columns and written into memory-mapped ``.npy`` files, so peak memory is a
    few windows (about ``(layers + 4) * 4 * tile_size * (chunk_px + 2 * buffer_px)`` bytes),
    whatever the size of the dataset. The result does not depend on ``chunk_px``.
    """
    dest = Path(dest_dir)
    dest.mkdir(parents=True, exist_ok=True)
    t = tile_size
    chunk = max(t, chunk_px // t * t)
    names: list[str] | None = None
    plans = []
    rows: list[dict[str, object]] = []
    members: list[dict[str, object]] = []
    offset = 0
    # Pass 1: layers, padded shapes, block splits and the chips kept (from the valid band).
    for k, src in enumerate(sources):
        if VALID not in band_names(src.features):
            raise InputDataError(
                f"{src.features}: has no {VALID!r} band, so it is not a glaciermap feature "
                "stack; rebuild it with the features step"
            )
        layers = stack_layers(src.features)
        if names is None:
            names = layers
        elif layers != names:
            raise InputDataError(
                f"{src.features}: layers {layers} differ from those of the first dataset member "
                f"{names}; members of one dataset need the same layers"
            )
        grid = grid_of(src.features)
        check_same_grid(grid, src.labels)
        nr, nc = -(-grid.height // t), -(-grid.width // t)
        blocks = assign_blocks(
            -(-nr // block_tiles), -(-nc // block_tiles), val_frac, test_frac, seed + k
        )
        codes = np.vectorize(SPLIT_CODES.__getitem__, otypes=[np.uint8])(blocks)
        valid_frac = np.zeros((nr, nc))
        with open_raster(src.features) as ds:
            vband = ds.descriptions.index(VALID) + 1
            for r in range(nr):
                h = min(t, grid.height - r * t)
                for c0 in range(0, grid.width, chunk):
                    w = min(chunk, grid.width - c0)
                    v = np.zeros((t, -(-w // t) * t), dtype=bool)
                    v[:h, :w] = ds.read(vband, window=Window(c0, r * t, w, h)) > 0
                    fr = v.reshape(t, -1, t).mean(axis=(0, 2))
                    valid_frac[r, c0 // t : c0 // t + len(fr)] = fr
        kept = []
        for r in range(nr):
            for c in range(nc):
                frac = valid_frac[r, c]
                if frac < min_valid:
                    continue
                left, top = grid.transform @ (c * t, r * t)
                right, bottom = grid.transform @ ((c + 1) * t, (r + 1) * t)
                kept.append((r, c, len(rows)))
                rows.append(
                    {
                        "tile_id": len(rows),
                        "split": str(blocks[r // block_tiles, c // block_tiles]),
                        "region": src.region,
                        "year": src.year,
                        "row": r,
                        "col": c,
                        "left": left,
                        "bottom": bottom,
                        "right": right,
                        "top": top,
                        "valid_fraction": round(float(frac), 4),
                        "glacier_fraction": 0.0,  # filled in pass 2
                    }
                )
        ph, pw = nr * t, nc * t
        members.append(
            {"region": src.region, "year": src.year, "height": ph, "width": pw, "offset": offset}
        )
        plans.append((src, grid, codes, kept, offset))
        offset += ph * pw
    if not rows or names is None:
        raise InputDataError(
            f"no chip of {t} px has >= {min_valid:.0%} valid pixels in "
            f"{[str(s.features) for s in sources]}; check those feature stacks' inputs (all "
            "NaN?) or lower datasets: min_valid"
        )
    n_layers, span = len(names), block_tiles * t
    counts = np.zeros(4, dtype=np.int64)
    # Pass 2: stream every member window by window into the memory-mapped store and chips.
    with (
        atomic_path(dest / "area_features.npy") as fax,
        atomic_path(dest / "area_labels.npy") as fay,
        atomic_path(dest / "area_split.npy") as fas,
        atomic_path(dest / "features.npy") as fcx,
        atomic_path(dest / "labels.npy") as fcy,
    ):
        ax = np.lib.format.open_memmap(fax, "w+", np.float32, (n_layers, offset))
        ay = np.lib.format.open_memmap(fay, "w+", np.uint8, (offset,))
        asp = np.lib.format.open_memmap(fas, "w+", np.uint8, (offset,))
        cx = np.lib.format.open_memmap(fcx, "w+", np.float32, (len(rows), n_layers, t, t))
        cy = np.lib.format.open_memmap(fcy, "w+", np.uint8, (len(rows), t, t))
        for src, grid, codes, kept, off in plans:
            ph, pw = -(-grid.height // t) * t, -(-grid.width // t) * t
            by_pos = {(r, c): i for r, c, i in kept}
            with open_raster(src.features) as fs, open_raster(src.labels) as ls:
                bands = [fs.descriptions.index(n) + 1 for n in [*names, VALID]]
                for r0 in range(0, ph, t):
                    for c0 in range(0, pw, chunk):
                        w = min(chunk, pw - c0)
                        x = np.full((n_layers, t, w), np.nan, dtype=np.float32)
                        y = np.full((t, w), IGNORE, dtype=np.uint8)
                        hh, ww = min(t, grid.height - r0), min(w, grid.width - c0)
                        if hh > 0 and ww > 0:
                            win = Window(c0, r0, ww, hh)
                            data = np.ma.filled(
                                fs.read(bands, window=win, masked=True).astype(np.float32), np.nan
                            )
                            x[:, :hh, :ww] = data[:-1]
                            lab = ls.read(1, window=win)
                            y[:hh, :ww] = np.where(data[-1] > 0, lab, IGNORE)
                        b = buffer_px
                        sp = _split_window(
                            codes, span, r0 - b, c0 - b, t + 2 * b, w + 2 * b, (ph, pw)
                        )
                        core = np.s_[b : b + t, b : b + w]
                        split = np.where(buffer_mask(sp, b)[core], BUFFER, sp[core]).astype(
                            np.uint8
                        )
                        for i in range(t):  # the store is row-major per member
                            a = off + (r0 + i) * pw + c0
                            ax[:, a : a + w] = x[:, i]
                            ay[a : a + w] = y[i]
                            asp[a : a + w] = split[i]
                        counts += np.bincount(split[y != IGNORE].ravel(), minlength=4)[:4]
                        for j in range(w // t):
                            pos = (r0 // t, c0 // t + j)
                            if pos in by_pos:
                                n = by_pos[pos]
                                cx[n] = x[:, :, j * t : (j + 1) * t]
                                cy[n] = y[:, j * t : (j + 1) * t]
                                rows[n]["glacier_fraction"] = round(float((cy[n] == 1).mean()), 4)
                log.info("tiles: %s_%s streamed (%d x %d px)", src.region, src.year, ph, pw)
        for m in (ax, ay, asp, cx, cy):
            m.flush()
        del ax, ay, asp, cx, cy
    index = pd.DataFrame(rows)
    for split_name in SPLITS:
        if not (index["split"] == split_name).any():
            log.warning(
                "tiles: split %r is empty; enlarge the region or lower block_tiles", split_name
            )
    write_json(
        {
            "layers": names,
            "tile_size": tile_size,
            "n_tiles": len(rows),
            "buffer_px": buffer_px,
            "members": members,
        },
        dest / "meta.json",
    )
    with atomic_path(dest / "index.csv") as tmp:
        index.to_csv(tmp, index=False)
    log.info(
        "tiles: chips %s; labelled pixels train %d, val %d, test %d, buffer %d",
        index["split"].value_counts().to_dict(),
        *counts[:4],
    )
    return index
