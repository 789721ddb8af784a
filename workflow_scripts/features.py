"""Rule features_tile: stack all layers of one processing tile of a region/year (DEM and SAR
where it has them)."""

from rasterio.windows import Window

from glaciermap.core.logs import step_logging
from glaciermap.ml.features import build_feature_stack

with step_logging(snakemake.log[0]):
    inp = snakemake.input
    cfg = snakemake.params.features
    r0, c0, h, w = snakemake.params.tile
    build_feature_stack(
        inp.grid,
        inp.optical,
        dem=inp.get("dem"),
        slope=inp.get("slope"),
        dest=snakemake.output[0],
        backscatter=inp.get("backscatter"),
        coherence=inp.get("coherence"),
        derived=cfg["derived"],
        texture_px=cfg["texture_px"],
        tile=Window(c0, r0, w, h),
    )
