"""Rules labels and debris_labels: rasterize the inventory (or debris cover) on the grid."""

from glaciermap.core.logs import step_logging
from glaciermap.ingest.labels import build_labels

with step_logging(snakemake.log[0]):
    inp = snakemake.input
    if "debris" in inp.keys():
        build_labels(inp.debris, inp.grid, snakemake.output[0], band="debris")
    else:
        build_labels(inp.inventory, inp.grid, snakemake.output[0])
