"""Rule outlines: probability -> glacier outlines (GeoPackage layers glaciers, complexes)."""

from glaciermap.core.io import open_raster
from glaciermap.core.logs import step_logging
from glaciermap.products.outlines import polygonize_probability


def optional(name):
    """The file of an optional input (given as [] or [path]), or None."""
    value = snakemake.input.get(name)
    return (value if isinstance(value, str) else value[0]) if value else None


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
        inventory=optional("inventory"),
        dem=optional("dem"),
        **snakemake.params.polygonize,
    )
