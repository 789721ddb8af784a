"""Rule training_curves: loss and validation IoU per epoch."""

from glaciermap.core.logs import step_logging
from glaciermap.products.plots import training_curves

with step_logging(snakemake.log[0]):
    wc = snakemake.wildcards
    training_curves(snakemake.input[0], snakemake.output[0], f"{wc.arch} {wc.featureset}")
