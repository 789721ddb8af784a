"""Rule outlines: probability -> glacier outlines (GeoPackage)."""

from glaciermap.io import open_raster
from glaciermap.logs import step_logging
from glaciermap.polygonize import polygonize_probability

with step_logging(snakemake.log[0]):
    with open_raster(snakemake.input.optical) as src:
        tags = src.tags()
    polygonize_probability(
        snakemake.input.probability,
        snakemake.output[0],
        region=snakemake.wildcards.region,
        year=int(snakemake.wildcards.year),
        sensor=tags.get("SENSOR", ""),
        acquisition_dates=tags.get("ACQUISITION_DATES", "").split(","),
        inventory=snakemake.input.inventory[0] if snakemake.input.inventory else None,
        **snakemake.params.polygonize,
    )
