"""Rule optical_composite: the tiles of an epoch's composite gathered into the region's VRT,
when enough of the region has a clear observation."""

from glaciermap.core.logs import step_logging
from glaciermap.core.raster import tile_parts
from glaciermap.ingest.optical import gather_optical_tiles

with step_logging(snakemake.log[0]):
    parts = tile_parts(snakemake.input.tiles, snakemake.params.windows)
    gather_optical_tiles(
        snakemake.input.grid,
        parts,
        snakemake.output[0],
        min_coverage=snakemake.params.min_coverage,
    )
