"""Rules sar_backscatter and sar_coherence: a SAR layer's processing tiles gathered into the
region's VRT, when the SAR files reach the region."""

from glaciermap.core.logs import step_logging
from glaciermap.core.raster import tile_parts
from glaciermap.ingest.sar import gather_sar_tiles

with step_logging(snakemake.log[0]):
    parts = tile_parts(snakemake.input.tiles, snakemake.params.windows)
    gather_sar_tiles(snakemake.input.grid, parts, snakemake.output[0], snakemake.params.files)
