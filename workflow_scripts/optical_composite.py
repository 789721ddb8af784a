"""Rule optical_composite_tile: scenes of one epoch -> cloud-free composite on one
processing tile of the grid."""

from rasterio.windows import Window

from glaciermap.core.logs import step_logging
from glaciermap.ingest.optical import build_optical_composite

with step_logging(snakemake.log[0]):
    opt = snakemake.params.optical
    r0, c0, h, w = snakemake.params.tile
    build_optical_composite(
        list(snakemake.input.scenes),
        snakemake.input.grid,
        snakemake.output[0],
        threads=snakemake.threads,
        min_coverage=opt["min_coverage"],
        method=opt["composite"],
        target_doy=opt["target_doy"],
        harmonise=opt["harmonise"],
        tile=Window(c0, r0, w, h),
    )
