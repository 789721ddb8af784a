rule train_rf:
    """Random forest on a balanced sample of train pixels."""
    input:
        rules.tiles.output,
    output:
        model="results/models/{dataset}/rf_{featureset}/model.skops",
        norm="results/models/{dataset}/rf_{featureset}/norm.json",
        config="results/models/{dataset}/rf_{featureset}/config.json",
        history="results/models/{dataset}/rf_{featureset}/history.csv",
    log:
        "logs/train/{dataset}/rf_{featureset}.log",
    benchmark:
        "logs/benchmarks/train/{dataset}/rf_{featureset}.tsv"
    conda:
        "../envs/ml.yaml"
    threads: config["threads"]["train"]
    resources:
        mem_mb=scaled(8000),
        runtime=scaled(60),
    params:
        rf=config["training"]["rf"],
        version=VERSION,
    script:
        "../workflow_scripts/train_rf.py"


rule train_cnn:
    """A CNN (U-Net) trained on the dataset's tiles; GPU when present (device: auto)."""
    input:
        rules.tiles.output,
    output:
        weights="results/models/{dataset}/{cnn}_{featureset}/weights.pt",
        norm="results/models/{dataset}/{cnn}_{featureset}/norm.json",
        config="results/models/{dataset}/{cnn}_{featureset}/config.json",
        history="results/models/{dataset}/{cnn}_{featureset}/history.csv",
    log:
        "logs/train/{dataset}/{cnn}_{featureset}.log",
    benchmark:
        "logs/benchmarks/train/{dataset}/{cnn}_{featureset}.tsv"
    conda:
        "../envs/ml.yaml"
    threads: config["threads"]["train"]
    resources:
        mem_mb=scaled(12000),
        runtime=scaled(240),
    params:
        cnn=config["training"]["cnn"],
        version=VERSION,
    script:
        "../workflow_scripts/train_cnn.py"
