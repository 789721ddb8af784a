rule features:
    """All layers of a region/year stacked on its grid, with a valid mask."""
    input:
        unpack(feature_inputs),
    output:
        "results/features/{region}_{year}.tif",
    log:
        "logs/features/{region}_{year}.log",
    benchmark:
        "logs/benchmarks/features/{region}_{year}.tsv"
    conda:
        "../envs/geo.yaml"
    threads: 1
    resources:
        mem_mb=scaled(6000),
        runtime=scaled(20),
    params:
        features=config["features"],
        version=VERSION,
    script:
        "../workflow_scripts/features.py"


rule labels:
    """The glacier inventory rasterized on the grid (1 = glacier)."""
    input:
        grid="results/grid/{region}.json",
        inventory=inventory_file,
    output:
        "results/labels/{region}_{year}.tif",
    log:
        "logs/labels/{region}_{year}.log",
    benchmark:
        "logs/benchmarks/labels/{region}_{year}.tsv"
    conda:
        "../envs/geo.yaml"
    threads: 1
    resources:
        mem_mb=scaled(2000),
        runtime=scaled(10),
    params:
        version=VERSION,
    script:
        "../workflow_scripts/labels.py"


rule debris_labels:
    """Debris-cover polygons rasterized on the grid (1 = debris-covered glacier): metrics
    score clean and debris-covered ice apart."""
    input:
        grid="results/grid/{region}.json",
        debris=debris_file,
    output:
        "results/labels/debris/{region}_{year}.tif",
    log:
        "logs/labels/debris/{region}_{year}.log",
    benchmark:
        "logs/benchmarks/labels/debris/{region}_{year}.tsv"
    conda:
        "../envs/geo.yaml"
    threads: 1
    resources:
        mem_mb=scaled(2000),
        runtime=scaled(10),
    params:
        version=VERSION,
    script:
        "../workflow_scripts/labels.py"


rule tiles:
    """Chips of a training dataset with a spatial block train/val/test split."""
    input:
        features=dataset_features,
        labels=dataset_labels,
    output:
        features="results/tiles/{dataset}/features.npy",
        labels="results/tiles/{dataset}/labels.npy",
        index="results/tiles/{dataset}/index.csv",
        meta="results/tiles/{dataset}/meta.json",
    log:
        "logs/tiles/{dataset}.log",
    benchmark:
        "logs/benchmarks/tiles/{dataset}.tsv"
    conda:
        "../envs/geo.yaml"
    threads: 1
    resources:
        mem_mb=scaled(8000),
        runtime=scaled(20),
    params:
        cfg=dataset_params,
        version=VERSION,
    script:
        "../workflow_scripts/tiles.py"
