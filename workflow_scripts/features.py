"""Rule features: stack all layers of a region/year."""

from glaciermap.features import build_feature_stack
from glaciermap.logs import step_logging

with step_logging(snakemake.log[0]):
    inp = snakemake.input
    build_feature_stack(
        inp.grid,
        inp.optical,
        inp.dem,
        inp.slope,
        snakemake.output[0],
        backscatter=inp.get("backscatter"),
        coherence=inp.get("coherence"),
    )
