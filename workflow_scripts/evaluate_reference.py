"""Rule evaluate_reference: metrics of one model on a split of the reference dataset's chips."""

from pathlib import Path

from glaciermap.core.logs import step_logging
from glaciermap.ml.chip_eval import evaluate_chips

with step_logging(snakemake.log[0]):
    wc = snakemake.wildcards
    evaluate_chips(
        Path(snakemake.input.index).parent,
        Path(snakemake.input.config).parent,
        snakemake.output[0],
        split=wc.split,
        threshold=snakemake.params.threshold,
        batch_size=snakemake.params.batch_size,
        device=snakemake.params.device,
        threads=snakemake.threads,
        extra=dict(wc),
    )
