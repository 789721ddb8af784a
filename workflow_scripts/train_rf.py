"""Rule train_rf: random forest on the dataset's tiles."""

from pathlib import Path

from glaciermap.core.logs import step_logging
from glaciermap.ml.train import RfParams, train_rf

with step_logging(snakemake.log[0]):
    train_rf(
        Path(snakemake.input[0]).parent,
        snakemake.wildcards.featureset,
        Path(snakemake.output.model).parent,
        RfParams(**snakemake.params.rf),
        threads=snakemake.threads,
    )
