"""Rule evaluate_outlines: metrics of the final outlines against the inventory."""

from glaciermap.core.logs import step_logging
from glaciermap.products.metrics import evaluate_outlines

with step_logging(snakemake.log[0]):
    inp = snakemake.input
    evaluate_outlines(inp.outlines, inp.labels, inp.features, inp.grid, snakemake.output[0])
