"""Rule sar_coherence: selected coherence pairs -> temporal mean/median on the grid."""

from glaciermap.core.logs import step_logging
from glaciermap.ingest.sar import build_coherence

with step_logging(snakemake.log[0]):
    p = snakemake.params
    build_coherence(
        list(snakemake.input.files),
        snakemake.input.grid,
        snakemake.output[0],
        threads=snakemake.threads,
        reducer=p.reducer,
        max_baseline_days=p.max_baseline_days,
        months=p.months,
    )
