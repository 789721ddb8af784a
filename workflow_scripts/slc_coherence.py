"""Rule slc_coherence: coherence of one co-registered SLC pair."""

from glaciermap.insar import coherence_from_slc_files
from glaciermap.logs import step_logging

with step_logging(snakemake.log[0]):
    coherence_from_slc_files(
        snakemake.input.reference,
        snakemake.input.secondary,
        snakemake.output[0],
        window=tuple(snakemake.params.window),
    )
