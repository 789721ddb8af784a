"""Rule reference_tiles: the reference course's dataset converted into the chip store."""

from pathlib import Path

from glaciermap.core.logs import step_logging
from glaciermap.ingest.reference import convert_reference

with step_logging(snakemake.log[0]):
    cfg, features = snakemake.params.cfg, snakemake.params.features
    convert_reference(
        Path(snakemake.input.train).parent,
        Path(snakemake.output.index).parent,
        year=cfg["year"],
        tile_size=cfg["tile_size"],
        channels=cfg["channels"],
        regions=cfg["regions"],
        derived=features["derived"],
        texture_px=features["texture_px"],
        name=snakemake.wildcards.dataset,
    )
