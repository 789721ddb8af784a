"""Names the workflow reads when it is parsed: model architectures, feature sets and the
inputs each needs, and the split-block arithmetic of a dataset. Pure Python (no raster, no
torch), so parsing the workflow imports nothing heavy; the modules that implement them
check against these lists (a test keeps them in step)."""

from __future__ import annotations

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
