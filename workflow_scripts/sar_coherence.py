"""Rule sar_coherence_tile: selected coherence pairs -> temporal mean/median on one
processing tile of the grid."""

from rasterio.windows import Window

from glaciermap.core.logs import step_logging
from glaciermap.ingest.sar import build_coherence

with step_logging(snakemake.log[0]):
    p = snakemake.params
    r0, c0, h, w = p.tile
    build_coherence(
        list(snakemake.input.files),
        snakemake.input.grid,
        snakemake.output[0],
        threads=snakemake.threads,
        reducer=p.reducer,
        max_baseline_days=p.max_baseline_days,
        months=p.months,
        tile=Window(c0, r0, w, h),
        tile_only=True,  # the files over this tile (the DAG checked the region's selection)
    )
