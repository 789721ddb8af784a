"""Rule evaluate_model: pixel metrics of one model's probability against the inventory."""

from glaciermap.core.logs import step_logging
from glaciermap.products.metrics import evaluate_probability

with step_logging(snakemake.log[0]):
    inp = snakemake.input
    evaluate_probability(
        inp.probability,
        inp.labels,
        inp.features,
        snakemake.output[0],
        threshold=snakemake.params.threshold,
        extra=dict(snakemake.wildcards),
        debris=inp.debris[0] if inp.debris else None,
    )
