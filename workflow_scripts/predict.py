"""Rule predict: sliding-window probability of one model over a region/year."""

from pathlib import Path

from glaciermap.core.logs import step_logging
from glaciermap.ml.predict import sliding_window_predict

with step_logging(snakemake.log[0]):
    sliding_window_predict(
        snakemake.input.features,
        Path(snakemake.input.model[0]).parent,
        snakemake.output[0],
        threads=snakemake.threads,
        **snakemake.params.inference,
    )
