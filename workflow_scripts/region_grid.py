"""Rule region_grid: write the region's analysis grid."""

from glaciermap.core.grid import RegionGrid
from glaciermap.core.logs import step_logging

with step_logging(snakemake.log[0]):
    spec = snakemake.params.spec
    grid = RegionGrid.from_bounds(spec["crs"], spec["bounds"], float(spec["resolution_m"]))
    grid.save(snakemake.output[0])
