"""Rule changes: two epochs of outlines -> per-glacier area change + change map."""

from glaciermap.core.logs import step_logging
from glaciermap.products.changes import write_changes
from glaciermap.products.plots import change_map

with step_logging(snakemake.log[0]):
    w = snakemake.wildcards
    summary = write_changes(
        snakemake.input.first,
        snakemake.input.second,
        snakemake.output.gpkg,
        int(w.year1),
        int(w.year2),
        **snakemake.params.changes,
    )
    change_map(snakemake.output.gpkg, snakemake.output.map, f"{w.region}: {summary.line()}")
