"""Names the workflow reads when it is parsed: model architectures, feature sets and the
inputs each needs, and the split-block arithmetic of a dataset. Pure Python (no raster, no
torch), so parsing the workflow imports nothing heavy; the modules that implement them
check against these lists (a test keeps them in step)."""

from __future__ import annotations

import functools
from collections.abc import Mapping
from types import MappingProxyType

CNN_ARCHS: tuple[str, ...] = ("unet", "segnet", "deeplabv3plus")
"""The convolutional networks (implemented in :mod:`glaciermap.ml.models`)."""

ARCHS: tuple[str, ...] = ("rf", *CNN_ARCHS)
"""Every model architecture: the random forest and the CNNs."""

FEATURESET_INPUTS: dict[str, frozenset[str]] = {
    "rgbn": frozenset({"optical"}),
    "optical": frozenset({"optical"}),
    "optical_dem": frozenset({"optical", "dem"}),
    "optical_dem_sar": frozenset({"optical", "dem", "backscatter", "coherence"}),
}
"""Feature set -> the input kinds it needs (optical, dem, backscatter, coherence)."""

FEATURESETS: tuple[str, ...] = tuple(FEATURESET_INPUTS)
"""Every feature set, from the fewest layers to the most."""


def blocks_per_member(shape: tuple[int, int], tile_size: int, block_tiles: int) -> int:
    """How many split blocks a grid of ``shape`` pixels gives (padded to whole chips)."""
    nr, nc = -(-shape[0] // tile_size), -(-shape[1] // tile_size)
    return -(-nr // block_tiles) * -(-nc // block_tiles)


TILE_ALIGN_PX = 256
"""Processing tiles are whole multiples of the 256 px GeoTIFF blocks (so the region's VRT
reads whole blocks of each tile file)."""


def processing_tile_px(resolution_m: float, tile_km: float) -> int:
    """Side in pixels of a processing tile: ``tile_km`` rounded to whole 256 px blocks (at
    least one): 20 km is 2048 px at 10 m and 768 px at 30 m."""
    px = tile_km * 1000.0 / resolution_m
    return max(1, round(px / TILE_ALIGN_PX)) * TILE_ALIGN_PX


@functools.lru_cache(maxsize=64)
def processing_tiles(
    shape: tuple[int, int], resolution_m: float, tile_km: float
) -> Mapping[str, tuple[int, int, int, int]]:
    """The processing tiles of a grid of ``shape`` (rows, cols) pixels: tile id
    ``r{i}c{j}`` -> window ``(row_off, col_off, height, width)`` on the grid, row by row; the
    last row and column of tiles are cut at the grid edge. A grid no larger than one tile is
    the single tile ``r0c0``.

    Cached and read-only: the workflow asks for the tiles of a region once per tile job
    while it builds the DAG (an Alps-size region has ~1,250 tiles per epoch)."""
    t = processing_tile_px(resolution_m, tile_km)
    height, width = shape
    return MappingProxyType(
        {
            f"r{i}c{j}": (r0, c0, min(t, height - r0), min(t, width - c0))
            for i, r0 in enumerate(range(0, height, t))
            for j, c0 in enumerate(range(0, width, t))
        }
    )
