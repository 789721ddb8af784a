"""Rule slc_coherence: coherence of one co-registered SLC pair."""

from glaciermap.core.logs import step_logging
from glaciermap.ingest.insar import coherence_from_slc_files

with step_logging(snakemake.log[0]):
    coherence_from_slc_files(
        snakemake.input.reference,
        snakemake.input.secondary,
        snakemake.output[0],
        window=tuple(snakemake.params.window),
    )
