# The reference course's dataset (train.hdf5, val.hdf5, test.hdf5) as a dataset: a NAME under
# `reference:` is converted into results/tiles/NAME/ (the chip store that the rule tiles writes
# for `datasets:`), so train_rf / train_cnn run on it unchanged, and its test split is scored
# straight from the chips (results/eval/NAME/test/...), which tables/NAME_benchmark.md shows.
# Input functions: rules/reference_common.smk.


rule reference_tiles:
    """The reference course's dataset converted into the chip store, tile by tile."""
    input:
        unpack(reference_files),
    output:
        features="results/tiles/{dataset}/features.npy",
        labels="results/tiles/{dataset}/labels.npy",
        index="results/tiles/{dataset}/index.csv",
        meta="results/tiles/{dataset}/meta.json",
    log:
        "logs/tiles/{dataset}.log",
    benchmark:
        "logs/benchmarks/tiles/{dataset}.tsv"
    wildcard_constraints:
        dataset=REFERENCE_NAMES,
    conda:
        "../envs/geo.yaml"
    threads: 1
    resources:
        mem_mb=scaled(4000),
        runtime=scaled(30),
    params:
        cfg=lambda wildcards: reference_cfg(wildcards.dataset),
        features=config["features"],
        version=VERSION,
    script:
        "../workflow_scripts/reference_tiles.py"


rule evaluate_reference:
    """Pixel metrics of one model on a split of the reference dataset, from its chips."""
    input:
        unpack(reference_eval_inputs),
    output:
        "results/eval/{dataset}/{split}/{arch}_{featureset}.json",
    log:
        "logs/eval/{dataset}/{split}/{arch}_{featureset}.log",
    benchmark:
        "logs/benchmarks/eval/{dataset}/{split}/{arch}_{featureset}.tsv"
    wildcard_constraints:
        split="train|val|test",
        dataset=REFERENCE_NAMES,
    conda:
        "../envs/ml.yaml"
    threads: config["threads"]["predict"]
    resources:
        mem_mb=scaled(4000),
        runtime=scaled(30),
    params:
        threshold=config["evaluation"]["threshold"],
        batch_size=config["inference"]["batch_size"],
        device=config["inference"]["device"],
        version=VERSION,
    script:
        "../workflow_scripts/evaluate_reference.py"
