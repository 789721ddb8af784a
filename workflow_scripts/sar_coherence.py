"""Rule sar_coherence: coherence pairs -> mean coherence on the grid."""

from glaciermap.logs import step_logging
from glaciermap.sar import build_coherence

with step_logging(snakemake.log[0]):
    build_coherence(
        list(snakemake.input.files),
        snakemake.input.grid,
        snakemake.output[0],
        threads=snakemake.threads,
    )
