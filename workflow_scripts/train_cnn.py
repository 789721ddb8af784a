"""Rule train_cnn: a CNN on the dataset's tiles (CUDA when present)."""

from pathlib import Path

from glaciermap.core.logs import step_logging
from glaciermap.ml.train import CnnParams, train_cnn

with step_logging(snakemake.log[0]):
    train_cnn(
        Path(snakemake.input[0]).parent,
        snakemake.wildcards.featureset,
        snakemake.wildcards.cnn,
        Path(snakemake.output.weights).parent,
        CnnParams(**snakemake.params.cnn),
        threads=snakemake.threads,
    )
