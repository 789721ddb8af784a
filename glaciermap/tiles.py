"""Cutting feature stacks into chips with a spatial train/val/test split.

Chips of ``tile_size`` pixels are grouped into square blocks of ``block_tiles`` x
``block_tiles`` chips; whole blocks go to one split (seeded shuffle), so neighbouring chips
rarely straddle splits (spatial block cross-validation, no pixel leakage). Chips with less
than ``min_valid`` valid pixels are dropped.

Written to ``dest_dir``: ``features.npy`` (N, C, T, T) float32 (NaN where invalid),
``labels.npy`` (N, T, T) uint8 (255 where invalid or unlabelled), ``index.csv`` (one row per
chip: tile_id, split, region, year, row, col, left, bottom, right, top) and ``meta.json``
(layer names, tile size).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from numpy.typing import NDArray

from glaciermap.errors import InputDataError
from glaciermap.features import VALID, stack_layers
from glaciermap.grid import grid_of
from glaciermap.io import PathLike, atomic_path, read_bands, write_json

log = logging.getLogger(__name__)

IGNORE = 255
SPLITS = ("train", "val", "test")


@dataclass(frozen=True)
class TileSource:
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


def make_tiles(
    sources: Sequence[TileSource],
    dest_dir: PathLike,
    tile_size: int,
    block_tiles: int = 4,
    val_frac: float = 0.15,
    test_frac: float = 0.15,
    min_valid: float = 0.5,
    seed: int = 0,
) -> pd.DataFrame:
    """Cut chips from every source; returns the index table (also written)."""
    dest = Path(dest_dir)
    names: list[str] | None = None
    feats: list[NDArray[np.float32]] = []
    labs: list[NDArray[np.uint8]] = []
    rows: list[dict[str, object]] = []
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
        valid = data[-1] > 0
        x = data[:-1]
        y = np.where(valid, lab[0], IGNORE).astype(np.uint8)
        nr, nc = grid.height // tile_size, grid.width // tile_size
        if nr == 0 or nc == 0:
            raise InputDataError(
                f"{src.features}: grid {grid.shape} is smaller than one tile ({tile_size} px); "
                "lower tiles.tile_size in the config"
            )
        blocks = assign_blocks(
            -(-nr // block_tiles), -(-nc // block_tiles), val_frac, test_frac, seed + k
        )
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
    if not rows or names is None:
        raise InputDataError(f"no tile with >= {min_valid:.0%} valid pixels in {list(sources)}")
    index = pd.DataFrame(rows)
    for split in SPLITS:
        if not (index["split"] == split).any():
            log.warning("tiles: split %r is empty; enlarge the region or lower block_tiles", split)
    dest.mkdir(parents=True, exist_ok=True)
    with atomic_path(dest / "features.npy") as tmp:
        np.save(tmp, np.stack(feats).astype(np.float32))
    with atomic_path(dest / "labels.npy") as tmp:
        np.save(tmp, np.stack(labs))
    write_json({"layers": names, "tile_size": tile_size, "n_tiles": len(rows)}, dest / "meta.json")
    with atomic_path(dest / "index.csv") as tmp:
        index.to_csv(tmp, index=False)
    log.info("tiles: %s", index["split"].value_counts().to_dict())
    return index
