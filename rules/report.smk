rule quicklooks:
    """Maps for the report: false colour with outlines, probability, slope, coherence."""
    input:
        unpack(quicklook_inputs),
    output:
        false_colour=report(
            "results/quicklooks/{region}_{year}/false_colour.png",
            caption="../report/false_colour.rst",
            category="Maps",
            subcategory="{region} {year}",
        ),
        probability=report(
            "results/quicklooks/{region}_{year}/probability.png",
            caption="../report/probability.rst",
            category="Maps",
            subcategory="{region} {year}",
        ),
        slope=report(
            "results/quicklooks/{region}_{year}/slope.png",
            caption="../report/slope.rst",
            category="Maps",
            subcategory="{region} {year}",
        ),
        coherence=report(
            "results/quicklooks/{region}_{year}/coherence.png",
            caption="../report/coherence.rst",
            category="Maps",
            subcategory="{region} {year}",
        ),
        backscatter=report(
            "results/quicklooks/{region}_{year}/backscatter.png",
            caption="../report/backscatter.rst",
            category="Maps",
            subcategory="{region} {year}",
        ),
        elevation=report(
            "results/quicklooks/{region}_{year}/elevation.png",
            caption="../report/elevation.rst",
            category="Maps",
            subcategory="{region} {year}",
        ),
    log:
        "logs/quicklooks/{region}_{year}.log",
    benchmark:
        "logs/benchmarks/quicklooks/{region}_{year}.tsv"
    conda:
        "../envs/geo.yaml"
    threads: 1
    resources:
        mem_mb=scaled(2000),
        runtime=scaled(10),
    params:
        version=VERSION,
    script:
        "../workflow_scripts/quicklooks.py"


rule training_curves:
    """Loss and validation IoU per epoch of a trained model."""
    input:
        "results/models/{dataset}/{arch}_{featureset}/history.csv",
    output:
        report(
            "results/models/{dataset}/{arch}_{featureset}/history.png",
            caption="../report/training_curves.rst",
            category="Training",
        ),
    log:
        "logs/training_curves/{dataset}/{arch}_{featureset}.log",
    benchmark:
        "logs/benchmarks/training_curves/{dataset}/{arch}_{featureset}.tsv"
    conda:
        "../envs/geo.yaml"
    threads: 1
    resources:
        mem_mb=scaled(1000),
        runtime=scaled(5),
    params:
        version=VERSION,
    script:
        "../workflow_scripts/training_curves.py"


rule evaluate_split:
    """Pixel metrics of one model over the dataset's held-out test chips."""
    input:
        unpack(split_eval_inputs),
    output:
        "results/eval/{dataset}/{split}/{arch}_{featureset}.json",
    log:
        "logs/eval/{dataset}/{split}/{arch}_{featureset}.log",
    benchmark:
        "logs/benchmarks/eval/{dataset}/{split}/{arch}_{featureset}.tsv"
    wildcard_constraints:
        split="train|val|test",
        dataset=DATASET_NAMES,
    conda:
        "../envs/geo.yaml"
    threads: 1
    resources:
        mem_mb=scaled(4000),
        runtime=scaled(10),
    params:
        members=dataset_member_names,
        threshold=config["evaluation"]["threshold"],
        version=VERSION,
    script:
        "../workflow_scripts/evaluate_split.py"


rule benchmark_table:
    """Models x feature sets on the test chips (or the held-out ``benchmark: test_on``
    region/year), beside the published Alps table."""
    input:
        benchmark_results,
    output:
        md="tables/{dataset}_benchmark.md",
        csv=report(
            "tables/{dataset}_benchmark.csv",
            caption="../report/benchmark.rst",
            category="Metrics",
        ),
    log:
        "logs/benchmark_table/{dataset}.log",
    benchmark:
        "logs/benchmarks/benchmark_table/{dataset}.tsv"
    conda:
        "../envs/geo.yaml"
    threads: 1
    resources:
        mem_mb=scaled(1000),
        runtime=scaled(5),
    params:
        models=benchmark_pairs,
        test_on=benchmark_scored_on,
        version=VERSION,
    script:
        "../workflow_scripts/benchmark_table.py"
