"""Rule features: stack all layers of a region/year (DEM and SAR where it has them)."""

from glaciermap.core.logs import step_logging
from glaciermap.ml.features import build_feature_stack

with step_logging(snakemake.log[0]):
    inp = snakemake.input
    cfg = snakemake.params.features
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
    )
