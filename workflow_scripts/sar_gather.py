"""Rules sar_backscatter and sar_coherence: a SAR layer's processing tiles gathered into the
region's VRT, when the SAR files reach the region."""

from rasterio.windows import Window

from glaciermap.core.logs import step_logging
from glaciermap.ingest.sar import gather_sar_tiles

with step_logging(snakemake.log[0]):
    parts = [
        (path, Window(c0, r0, w, h))
        for path, (r0, c0, h, w) in zip(
            snakemake.input.tiles, snakemake.params.windows, strict=True
        )
    ]
    gather_sar_tiles(snakemake.input.grid, parts, snakemake.output[0], snakemake.params.files)
