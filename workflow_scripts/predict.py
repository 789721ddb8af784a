"""Rule predict_tile: sliding-window probability of one model over one processing tile."""

from pathlib import Path

from rasterio.windows import Window

from glaciermap.core.logs import step_logging
from glaciermap.ml.predict import sliding_window_predict

with step_logging(snakemake.log[0]):
    r0, c0, h, w = snakemake.params.tile
    sliding_window_predict(
        snakemake.input.features,
        Path(snakemake.input.model[0]).parent,
        snakemake.output[0],
        threads=snakemake.threads,
        tile=Window(c0, r0, w, h),
        **snakemake.params.inference,
    )
