"""Rule terrain: the tiles' DEM, slope and aspect gathered into the region's VRTs, when the
DEM files cover enough of the region."""

from glaciermap.core.logs import step_logging
from glaciermap.core.raster import tile_parts
from glaciermap.ingest.terrain import gather_terrain_tiles

with step_logging(snakemake.log[0]):
    layers = ("dem", "slope", "aspect")
    gather_terrain_tiles(
        snakemake.input.grid,
        [win for _, win in tile_parts(snakemake.input.dem, snakemake.params.windows)],
        {  # slope and aspect tiles come from the same jobs as the DEM tiles (params)
            "dem": list(snakemake.input.dem),
            "slope": list(snakemake.params.slope),
            "aspect": list(snakemake.params.aspect),
        },
        {k: snakemake.output[k] for k in layers},
        list(snakemake.params.files),
    )
