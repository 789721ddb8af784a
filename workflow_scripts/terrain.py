"""Rule terrain: DEM tiles -> DEM, slope, aspect on the grid."""

from glaciermap.core.logs import step_logging
from glaciermap.ingest.terrain import build_terrain

with step_logging(snakemake.log[0]):
    build_terrain(
        list(snakemake.input.tiles),
        snakemake.input.grid,
        snakemake.output.dem,
        snakemake.output.slope,
        snakemake.output.aspect,
        threads=snakemake.threads,
    )
