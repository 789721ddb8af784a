"""Rule terrain_tile: DEM files -> DEM, slope, aspect of one processing tile of the grid."""

from rasterio.windows import Window

from glaciermap.core.logs import step_logging
from glaciermap.ingest.terrain import build_terrain_tile

with step_logging(snakemake.log[0]):
    r0, c0, h, w = snakemake.params.tile
    build_terrain_tile(
        list(snakemake.input.tiles),
        snakemake.input.grid,
        snakemake.output.dem,
        snakemake.output.slope,
        snakemake.output.aspect,
        Window(c0, r0, w, h),
        threads=snakemake.threads,
    )
