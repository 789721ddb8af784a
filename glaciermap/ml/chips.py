"""Cutting feature stacks into chips with a spatial train/val/test split, and the pixel
store that training draws random patches from.

The region is covered whole: it is padded (NaN features, ``IGNORE`` labels) to a multiple of
``tile_size``, and chips of ``tile_size`` pixels are grouped into square blocks of
``block_tiles`` x ``block_tiles`` chips; whole blocks go to one split (seeded shuffle), so
neighbouring chips rarely straddle splits (spatial block cross-validation). Chips with less
than ``min_valid`` valid pixels are dropped from the index (they stay in the pixel store).

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

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from numpy.typing import NDArray
from scipy import ndimage

from glaciermap.core.errors import InputDataError
from glaciermap.core.grid import grid_of
from glaciermap.core.io import PathLike, atomic_path, read_bands, write_json
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
    """Split name per block (n_rows, n_cols): a seeded shuffle, then test, val, train."""
    n = n_rows * n_cols
    order = np.random.default_rng(seed).permutation(n)
    n_test = max(1, round(test_frac * n)) if test_frac > 0 and n >= 3 else 0
    n_val = max(1, round(val_frac * n)) if val_frac > 0 and n >= 3 else 0
    while n_test + n_val > n - 1 and (n_test or n_val):  # keep at least one train block
        if n_val >= n_test:
            n_val -= 1
        else:
            n_test -= 1
    split = np.full(n, "train", dtype="<U5")
    split[order[:n_test]] = "test"
    split[order[n_test : n_test + n_val]] = "val"
    return split.reshape(n_rows, n_cols)


def buffer_mask(split_px: NDArray[np.uint8], buffer_px: int) -> NDArray[np.bool_]:
    """Train pixels within ``buffer_px`` (chessboard distance) of a val or test pixel."""
    if buffer_px <= 0:
        return np.zeros(split_px.shape, dtype=bool)
    held_out = (split_px == SPLIT_CODES["val"]) | (split_px == SPLIT_CODES["test"])
    near = ndimage.maximum_filter(held_out, size=2 * buffer_px + 1, mode="constant")
    return near & (split_px == SPLIT_CODES["train"])


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
) -> pd.DataFrame:
    """Cut chips from every source and write the pixel store; returns the index table."""
    dest = Path(dest_dir)
    dest.mkdir(parents=True, exist_ok=True)
    names: list[str] | None = None
    feats: list[NDArray[np.float32]] = []
    labs: list[NDArray[np.uint8]] = []
    rows: list[dict[str, object]] = []
    members: list[dict[str, object]] = []
    areas: list[tuple[NDArray[np.float32], NDArray[np.uint8], NDArray[np.uint8]]] = []
    offset = 0
    for k, src in enumerate(sources):
        layers = stack_layers(src.features)
        if names is None:
            names = layers
        elif layers != names:
            raise InputDataError(
                f"{src.features}: layers {layers} differ from those of the first dataset member "
                f"{names}; members of one dataset need the same layers"
            )
        data, _ = read_bands(src.features, [*layers, VALID])
        lab, _ = read_bands(src.labels)
        grid = grid_of(src.features)
        nr, nc = -(-grid.height // tile_size), -(-grid.width // tile_size)
        ph, pw = nr * tile_size, nc * tile_size
        x = np.full((len(layers), ph, pw), np.nan, dtype=np.float32)
        x[:, : grid.height, : grid.width] = data[:-1]
        valid = np.zeros((ph, pw), dtype=bool)
        valid[: grid.height, : grid.width] = data[-1] > 0
        del data
        y = np.full((ph, pw), IGNORE, dtype=np.uint8)
        y[: grid.height, : grid.width] = lab[0]
        y[~valid] = IGNORE
        blocks = assign_blocks(
            -(-nr // block_tiles), -(-nc // block_tiles), val_frac, test_frac, seed + k
        )
        codes = np.vectorize(SPLIT_CODES.__getitem__, otypes=[np.uint8])(blocks)
        split_px = np.repeat(
            np.repeat(codes, block_tiles * tile_size, axis=0), block_tiles * tile_size, axis=1
        )[:ph, :pw]
        split_px = np.where(buffer_mask(split_px, buffer_px), BUFFER, split_px).astype(np.uint8)
        for r in range(nr):
            for c in range(nc):
                win = np.s_[
                    r * tile_size : (r + 1) * tile_size, c * tile_size : (c + 1) * tile_size
                ]
                frac = valid[win].mean()
                if frac < min_valid:
                    continue
                left, top = grid.transform @ (c * tile_size, r * tile_size)
                right, bottom = grid.transform @ ((c + 1) * tile_size, (r + 1) * tile_size)
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
                        "glacier_fraction": round(float((y[win] == 1).mean()), 4),
                    }
                )
                feats.append(x[(slice(None), *win)])
                labs.append(y[win])
        members.append(
            {
                "region": src.region,
                "year": src.year,
                "height": ph,
                "width": pw,
                "offset": offset,
            }
        )
        offset += ph * pw
        areas.append((x, y, split_px))
    if not rows or names is None:
        raise InputDataError(f"no tile with >= {min_valid:.0%} valid pixels in {list(sources)}")
    index = pd.DataFrame(rows)
    for split in SPLITS:
        if not (index["split"] == split).any():
            log.warning("tiles: split %r is empty; enlarge the region or lower block_tiles", split)
    _write_store(dest, areas, len(names))
    with atomic_path(dest / "features.npy") as tmp:
        np.save(tmp, np.stack(feats).astype(np.float32))
    with atomic_path(dest / "labels.npy") as tmp:
        np.save(tmp, np.stack(labs))
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
    counts = np.bincount(np.concatenate([a[2][a[1] != IGNORE].ravel() for a in areas]), minlength=4)
    log.info(
        "tiles: chips %s; labelled pixels train %d, val %d, test %d, buffer %d",
        index["split"].value_counts().to_dict(),
        *counts[:4],
    )
    return index


def _write_store(
    dest: Path,
    areas: Sequence[tuple[NDArray[np.float32], NDArray[np.uint8], NDArray[np.uint8]]],
    n_layers: int,
) -> None:
    """The pixel store (see the module docstring), written through memory maps."""
    total = sum(a[1].size for a in areas)
    with (
        atomic_path(dest / "area_features.npy") as fx,
        atomic_path(dest / "area_labels.npy") as fy,
        atomic_path(dest / "area_split.npy") as fs,
    ):
        mx = np.lib.format.open_memmap(fx, "w+", np.float32, (n_layers, total))
        my = np.lib.format.open_memmap(fy, "w+", np.uint8, (total,))
        ms = np.lib.format.open_memmap(fs, "w+", np.uint8, (total,))
        off = 0
        for x, y, split_px in areas:
            n = y.size
            mx[:, off : off + n] = x.reshape(n_layers, n)
            my[off : off + n] = y.ravel()
            ms[off : off + n] = split_px.ravel()
            off += n
        for m in (mx, my, ms):
            m.flush()
        del mx, my, ms
