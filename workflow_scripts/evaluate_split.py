"""Rule evaluate_split: metrics of one model on the dataset's test chips."""

from glaciermap.core.logs import step_logging
from glaciermap.products.accuracy_table import evaluate_on_split

with step_logging(snakemake.log[0]):
    inp, wc = snakemake.input, snakemake.wildcards
    members = {
        m: (p, lab, f)
        for m, p, lab, f in zip(
            snakemake.params.members, inp.probability, inp.labels, inp.features, strict=True
        )
    }
    debris = {
        m: f"results/labels/debris/{m}.tif"
        for m in snakemake.params.members
        if f"results/labels/debris/{m}.tif" in list(inp.debris)
    }
    evaluate_on_split(
        inp.index,
        members,
        snakemake.output[0],
        wc.split,
        snakemake.params.threshold,
        dict(wc),
        debris=debris,
    )
