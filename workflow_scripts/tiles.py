"""Rule tiles: cut the dataset's feature stacks into chips with a spatial split."""

from pathlib import Path

from glaciermap.core.logs import step_logging
from glaciermap.ml.chips import TileSource, make_tiles

with step_logging(snakemake.log[0]):
    cfg = snakemake.params.cfg
    sources = []
    for member, feat, lab in zip(
        cfg["members"], snakemake.input.features, snakemake.input.labels, strict=True
    ):
        region, year = member.rsplit("_", 1)
        sources.append(TileSource(region, int(year), Path(feat), Path(lab)))
    make_tiles(
        sources,
        Path(snakemake.output.index).parent,
        tile_size=cfg["tile_size"],
        block_tiles=cfg["block_tiles"],
        val_frac=cfg["val_fraction"],
        test_frac=cfg["test_fraction"],
        min_valid=cfg["min_valid"],
        seed=cfg["seed"],
        buffer_px=cfg["buffer_px"],
    )
