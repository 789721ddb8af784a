"""Rules features and predict: a stage's processing tiles gathered into the region's file,
a VRT mosaic (and, for products people open as one file, a Cloud-Optimized GeoTIFF)."""

from glaciermap.core.grid import RegionGrid
from glaciermap.core.logs import step_logging
from glaciermap.core.raster import gather_cog, tile_parts, write_vrt

with step_logging(snakemake.log[0]):
    grid = RegionGrid.load(snakemake.input.grid)
    parts = tile_parts(snakemake.input.tiles, snakemake.params.windows)
    if snakemake.params.cog:
        write_vrt(snakemake.output.vrt, grid, parts)
        gather_cog(snakemake.output.vrt, snakemake.output.cog)
    else:
        write_vrt(snakemake.output[0], grid, parts)
