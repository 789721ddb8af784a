"""Rule optical_composite: the tiles of an epoch's composite gathered into the region's VRT,
when enough of the region has a clear observation."""

from rasterio.windows import Window

from glaciermap.core.logs import step_logging
from glaciermap.ingest.optical import gather_optical_tiles

with step_logging(snakemake.log[0]):
    parts = [
        (path, Window(c0, r0, w, h))
        for path, (r0, c0, h, w) in zip(
            snakemake.input.tiles, snakemake.params.windows, strict=True
        )
    ]
    gather_optical_tiles(
        snakemake.input.grid,
        parts,
        snakemake.output[0],
        min_coverage=snakemake.params.min_coverage,
    )
