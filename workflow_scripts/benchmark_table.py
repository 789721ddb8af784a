"""Rule benchmark_table: the table of models x feature sets."""

from glaciermap.core.logs import step_logging
from glaciermap.products.accuracy_table import benchmark_table

with step_logging(snakemake.log[0]):
    pairs = [tuple(p) for p in snakemake.params.models]
    results = dict(zip(pairs, snakemake.input, strict=True))
    test_on = snakemake.params.test_on
    title = f"{snakemake.wildcards.dataset}: glacier mapping benchmark"
    scored_on = (
        f"the held-out region/year {test_on} (not in the training dataset)"
        if test_on
        else "the dataset's held-out test chips"
    )
    benchmark_table(results, snakemake.output.md, snakemake.output.csv, title, scored_on)
