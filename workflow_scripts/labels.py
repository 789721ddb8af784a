"""Rule labels: rasterize the inventory on the grid."""

from glaciermap.labels import build_labels
from glaciermap.logs import step_logging

with step_logging(snakemake.log[0]):
    build_labels(snakemake.input.inventory, snakemake.input.grid, snakemake.output[0])
