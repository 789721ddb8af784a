rule features_tile:
    """All layers of one processing tile of a region/year, with a valid mask (the texture's
    halo read from the region's inputs beyond the tile)."""
    input:
        unpack(feature_inputs),
    output:
        "results/features/{region}_{year}/{tile}.tif",
    log:
        "logs/features/{region}_{year}/{tile}.log",
    benchmark:
        "logs/benchmarks/features/{region}_{year}/{tile}.tsv"
    conda:
        "../envs/geo.yaml"
    threads: 1
    resources:
        # benchmarks/region_scale.py: 315-437 MB for 2048 px tiles of 13 layers (+7 derived),
        # 2000^2 to 8000^2 px regions (64 MB of GDAL cache; the same pixels per tile at 30 m)
        mem_mb=scaled(1000),
        runtime=scaled(20),
    params:
        features=config["features"],
        tile=tile_window,
        version=VERSION,
    script:
        "../workflow_scripts/features.py"


rule features:
    """The region/year's feature stack: a VRT mosaic of its processing tiles."""
    input:
        grid="results/grid/{region}.json",
        tiles=tile_files("results/features/{region}_{year}/{tile}.tif"),
    output:
        "results/features/{region}_{year}.vrt",
    log:
        "logs/features/{region}_{year}.log",
    benchmark:
        "logs/benchmarks/features/{region}_{year}.tsv"
    conda:
        "../envs/geo.yaml"
    threads: 1
    resources:
        mem_mb=scaled(500),
        runtime=scaled(5),
    params:
        windows=tile_windows,
        cog=False,
        version=VERSION,
    script:
        "../workflow_scripts/gather_tiles.py"


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
        # benchmarks/region_scale.py: 179-199 MB from 2000^2 to 8000^2 px (block by block)
        mem_mb=scaled(1000),
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
        mem_mb=scaled(1000),
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
    wildcard_constraints:
        dataset=DATASET_NAMES,
    conda:
        "../envs/geo.yaml"
    threads: 1
    resources:
        # benchmarks/region_scale.py: 1116 MB for the demo's dataset; chips are written
        # incrementally to a memory-mapped store, a window of chip rows at a time, so the
        # peak follows the chip size and layers, not the dataset's size
        mem_mb=scaled(3000),
        runtime=scaled(20),
    params:
        cfg=dataset_params,
        version=VERSION,
    script:
        "../workflow_scripts/tiles.py"
