rule predict_tile:
    """Sliding-window probability (+ uncertainty) of one processing tile, block by block;
    windows reach into the neighbouring tiles' features and sit on the region's lattice.
    """
    input:
        features="results/features/{region}_{year}.vrt",
        model=model_files,
    output:
        "results/probability/{region}_{year}/{arch}_{featureset}/{tile}.tif",
    log:
        "logs/predict/{region}_{year}/{arch}_{featureset}/{tile}.log",
    benchmark:
        "logs/benchmarks/predict/{region}_{year}/{arch}_{featureset}/{tile}.tsv"
    conda:
        "../envs/ml.yaml"
    threads: config["threads"]["predict"]
    resources:
        mem_mb=scaled(4000),
        runtime=scaled(60),
    params:
        inference=config["inference"],
        tile=tile_window,
        version=VERSION,
    script:
        "../workflow_scripts/predict.py"


rule predict:
    """A model's probability over the region/year: its tiles gathered into one
    Cloud-Optimized GeoTIFF with overviews (and a VRT of the tiles)."""
    input:
        grid="results/grid/{region}.json",
        tiles=tile_files(
            "results/probability/{region}_{year}/{arch}_{featureset}/{tile}.tif"
        ),
    output:
        vrt="results/probability/{region}_{year}/{arch}_{featureset}.vrt",
        cog="results/probability/{region}_{year}/{arch}_{featureset}.tif",
    log:
        "logs/predict/{region}_{year}/{arch}_{featureset}.log",
    benchmark:
        "logs/benchmarks/predict/{region}_{year}/{arch}_{featureset}.tsv"
    conda:
        "../envs/geo.yaml"
    threads: 1
    resources:
        mem_mb=scaled(2000),
        runtime=scaled(30),
    params:
        windows=tile_windows,
        cog=True,
        version=VERSION,
    script:
        "../workflow_scripts/gather_tiles.py"


rule outlines:
    """Glacier outlines of the config's default model: threshold, clean-up, polygons split
    into glaciers (layer glaciers) and glacier complexes (layer complexes)."""
    input:
        probability=default_probability,
        optical="results/optical/{region}_{year}.vrt",
        inventory=optional_inventory,
        dem=optional_dem,
    output:
        "outlines/{region}_{year}.gpkg",
    log:
        "logs/outlines/{region}_{year}.log",
    benchmark:
        "logs/benchmarks/outlines/{region}_{year}.tsv"
    conda:
        "../envs/geo.yaml"
    threads: 1
    resources:
        # benchmarks/region_scale.py: 245-333 MB from 2000^2 to 8000^2 px with an inventory
        # (stripes and a split window of at most 4 Mpx, 1 Mpx by basins); on the 8000^2 input
        # 183 MB without a split, 346 MB by drainage basins. What grows with the region is
        # O(patches) (~60 B each) and the outlines of complexes still growing; simplify_m
        # holds every polygon (one coverage): headroom for that
        mem_mb=scaled(2000),
        runtime=scaled(20),
    params:
        polygonize=config["polygonize"],
        version=VERSION,
    script:
        "../workflow_scripts/outlines.py"


rule model_outlines:
    """Glacier outlines of one model (each model of benchmark:), as rule outlines makes them."""
    input:
        probability=model_probability,
        optical="results/optical/{region}_{year}.vrt",
        inventory=optional_inventory,
        dem=optional_dem,
    output:
        "results/outlines/{region}_{year}/{arch}_{featureset}.gpkg",
    log:
        "logs/outlines/{region}_{year}/{arch}_{featureset}.log",
    benchmark:
        "logs/benchmarks/outlines/{region}_{year}/{arch}_{featureset}.tsv"
    conda:
        "../envs/geo.yaml"
    threads: 1
    resources:
        mem_mb=scaled(2000),  # as rule outlines
        runtime=scaled(20),
    params:
        polygonize=config["polygonize"],
        version=VERSION,
    script:
        "../workflow_scripts/outlines.py"


rule evaluate_outlines:
    """Metrics of the final outlines against the rasterized inventory."""
    input:
        outlines="outlines/{region}_{year}.gpkg",
        labels=outline_labels,
        features="results/features/{region}_{year}.vrt",
        grid="results/grid/{region}.json",
    output:
        "results/eval/{region}_{year}/outlines.json",
    log:
        "logs/eval/{region}_{year}/outlines.log",
    benchmark:
        "logs/benchmarks/eval/{region}_{year}/outlines.tsv"
    conda:
        "../envs/geo.yaml"
    threads: 1
    resources:
        mem_mb=scaled(2000),
        runtime=scaled(10),
    params:
        version=VERSION,
    script:
        "../workflow_scripts/evaluate_outlines.py"


rule evaluate_model:
    """Pixel metrics of one model's probability (threshold) against the inventory."""
    input:
        probability=model_probability,
        labels=outline_labels,
        features="results/features/{region}_{year}.vrt",
        debris=optional_debris_labels,
    output:
        "results/eval/{region}_{year}/{arch}_{featureset}.json",
    log:
        "logs/eval/{region}_{year}/{arch}_{featureset}.log",
    benchmark:
        "logs/benchmarks/eval/{region}_{year}/{arch}_{featureset}.tsv"
    conda:
        "../envs/geo.yaml"
    threads: 1
    resources:
        mem_mb=scaled(2000),
        runtime=scaled(10),
    params:
        threshold=config["evaluation"]["threshold"],
        version=VERSION,
    script:
        "../workflow_scripts/evaluate_model.py"


rule changes:
    """Per-glacier area change between two epochs of outlines, and its map."""
    input:
        first="outlines/{region}_{year1}.gpkg",
        second="outlines/{region}_{year2}.gpkg",
    output:
        gpkg="changes/{region}_{year1}_{year2}.gpkg",
        map=report(
            "results/quicklooks/changes/{region}_{year1}_{year2}.png",
            caption="../report/changes.rst",
            category="Maps",
            subcategory="changes",
        ),
    log:
        "logs/changes/{region}_{year1}_{year2}.log",
    benchmark:
        "logs/benchmarks/changes/{region}_{year1}_{year2}.tsv"
    conda:
        "../envs/geo.yaml"
    threads: 1
    resources:
        mem_mb=scaled(2000),
        runtime=scaled(10),
    params:
        changes=config["changes"]["options"],
        version=VERSION,
    script:
        "../workflow_scripts/changes.py"
