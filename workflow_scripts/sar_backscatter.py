"""Rule sar_backscatter: per-date backscatter -> temporal mean/median in dB on the grid."""

from glaciermap.core.logs import step_logging
from glaciermap.ingest.sar import build_backscatter

with step_logging(snakemake.log[0]):
    build_backscatter(
        list(snakemake.input.files),
        snakemake.input.grid,
        snakemake.output[0],
        threads=snakemake.threads,
        scale=snakemake.params.scale,
        reducer=snakemake.params.reducer,
    )
