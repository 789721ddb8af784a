"""Rule sar_backscatter_tile: per-date backscatter -> temporal mean/median in dB on one
processing tile of the grid."""

from rasterio.windows import Window

from glaciermap.core.logs import step_logging
from glaciermap.ingest.sar import build_backscatter

with step_logging(snakemake.log[0]):
    r0, c0, h, w = snakemake.params.tile
    build_backscatter(
        list(snakemake.input.files),
        snakemake.input.grid,
        snakemake.output[0],
        threads=snakemake.threads,
        scale=snakemake.params.scale,
        reducer=snakemake.params.reducer,
        tile=Window(c0, r0, w, h),
        layers=snakemake.params.layers,
    )
