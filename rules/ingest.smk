rule region_grid:
    """The analysis grid of a region (CRS, transform, shape) from the config."""
    output:
        "results/grid/{region}.json",
    log:
        "logs/region_grid/{region}.log",
    benchmark:
        "logs/benchmarks/region_grid/{region}.tsv"
    conda:
        "../envs/geo.yaml"
    threads: 1
    resources:
        mem_mb=scaled(500),
        runtime=scaled(5),
    params:
        spec=grid_spec,
        version=VERSION,
    script:
        "../workflow_scripts/region_grid.py"


rule optical_composite_tile:
    """Cloud-masked median (or best-pixel) reflectance composite of an epoch on one
    processing tile of the grid, from the scenes that overlap it (one job per tile)."""
    input:
        grid="results/grid/{region}.json",
        scenes=optical_scenes,
    output:
        "results/optical/{region}_{year}/{tile}.tif",
    log:
        "logs/optical_composite/{region}_{year}/{tile}.log",
    benchmark:
        "logs/benchmarks/optical_composite/{region}_{year}/{tile}.tsv"
    conda:
        "../envs/geo.yaml"
    threads: config["threads"]["ingest"]
    resources:
        # measured (benchmarks/region_scale.py): 655 MB peak for a 4000 px region with two
        # scenes; each further scene adds ~25 MB per 1024 px block, and GDAL's block cache up
        # to 5 % of RAM: ~2.6 GB for 30 scenes on a 24 GB node
        mem_mb=scaled(4000),
        runtime=scaled(60),
    params:
        optical=config["optical"],
        tile=tile_window,
        version=VERSION,
    script:
        "../workflow_scripts/optical_composite.py"


rule optical_composite:
    """The epoch's composite over the region: a VRT mosaic of its tiles, written when enough
    of the region has a clear observation (optical: min_coverage)."""
    input:
        grid="results/grid/{region}.json",
        tiles=tile_files("results/optical/{region}_{year}/{tile}.tif"),
    output:
        "results/optical/{region}_{year}.vrt",
    log:
        "logs/optical_composite/{region}_{year}.log",
    benchmark:
        "logs/benchmarks/optical_composite/{region}_{year}.tsv"
    conda:
        "../envs/geo.yaml"
    threads: 1
    resources:
        mem_mb=scaled(500),
        runtime=scaled(5),
    params:
        windows=tile_windows,
        min_coverage=config["optical"]["min_coverage"],
        version=VERSION,
    script:
        "../workflow_scripts/optical_gather.py"


rule terrain_tile:
    """DEM tiles mosaicked on one processing tile of the grid (with the one-pixel halo Horn's
    kernel needs); Horn slope and aspect in degrees (one job per tile)."""
    input:
        grid="results/grid/{region}.json",
        tiles=dem_tiles_under_tile,
    output:
        dem="results/terrain/{region}/{tile}/dem.tif",
        slope="results/terrain/{region}/{tile}/slope.tif",
        aspect="results/terrain/{region}/{tile}/aspect.tif",
    log:
        "logs/terrain/{region}/{tile}.log",
    benchmark:
        "logs/benchmarks/terrain/{region}/{tile}.tsv"
    conda:
        "../envs/geo.yaml"
    threads: config["threads"]["ingest"]
    resources:
        # measured (benchmarks/ingest_memory.py): 181-197 MB for a 2000 px tile whatever the
        # DEM size; ~15 tile-sized float32 arrays at most (~250 MB at 2048 px)
        mem_mb=scaled(1000),
        runtime=scaled(20),
    params:
        tile=tile_window,
        version=VERSION,
    script:
        "../workflow_scripts/terrain.py"


rule terrain:
    """The region's DEM, slope and aspect: VRT mosaics of the tiles, written when the DEM
    files cover at least half of the region. Only the DEM tiles are inputs: the same
    terrain_tile jobs write the slope and aspect tiles (params), and every job that reads
    slope.vrt scans this job's input list while Snakemake builds the DAG (an Alps-size
    region: 2 x 2450 feature tiles x 3675 tiles, ~3 s of ~30 s; 1225 now)."""
    input:
        grid="results/grid/{region}.json",
        dem=tile_files("results/terrain/{region}/{tile}/dem.tif"),
    output:
        dem="results/terrain/{region}/dem.vrt",
        slope="results/terrain/{region}/slope.vrt",
        aspect="results/terrain/{region}/aspect.vrt",
    log:
        "logs/terrain/{region}.log",
    benchmark:
        "logs/benchmarks/terrain/{region}.tsv"
    conda:
        "../envs/geo.yaml"
    threads: 1
    resources:
        mem_mb=scaled(500),
        runtime=scaled(5),
    params:
        windows=tile_windows,
        files=dem_tiles,
        slope=tile_files("results/terrain/{region}/{tile}/slope.tif"),
        aspect=tile_files("results/terrain/{region}/{tile}/aspect.tif"),
        version=VERSION,
    script:
        "../workflow_scripts/terrain_gather.py"


rule sar_backscatter_tile:
    """Temporal mean or median co-pol and cross-pol backscatter (dB) on one processing tile
    of the grid, from the dates that overlap it (one job per tile)."""
    input:
        grid="results/grid/{region}.json",
        files=backscatter_tile_files,
    output:
        "results/sar/{region}_{year}/{tile}/backscatter.tif",
    log:
        "logs/sar_backscatter/{region}_{year}/{tile}.log",
    benchmark:
        "logs/benchmarks/sar_backscatter/{region}_{year}/{tile}.tsv"
    conda:
        "../envs/geo.yaml"
    threads: config["threads"]["ingest"]
    resources:
        # measured (benchmarks/ingest_memory.py): 96-98 MB for a 2000 px tile of 3 dates x 2
        # polarisations (the region step: 130 MB for 12 dates): one window of every date
        mem_mb=scaled(1000),
        runtime=scaled(20),
    params:
        scale=config["sar"]["backscatter_scale"],
        reducer=config["sar"]["backscatter_reducer"],
        tile=tile_window,
        layers=backscatter_layer_names,
        version=VERSION,
    script:
        "../workflow_scripts/sar_backscatter.py"


rule sar_backscatter:
    """The epoch's backscatter over the region: a VRT mosaic of its tiles."""
    input:
        grid="results/grid/{region}.json",
        tiles=tile_files("results/sar/{region}_{year}/{tile}/backscatter.tif"),
    output:
        "results/sar/{region}_{year}/backscatter.vrt",
    log:
        "logs/sar_backscatter/{region}_{year}.log",
    benchmark:
        "logs/benchmarks/sar_backscatter/{region}_{year}.tsv"
    conda:
        "../envs/geo.yaml"
    threads: 1
    resources:
        mem_mb=scaled(500),
        runtime=scaled(5),
    params:
        windows=tile_windows,
        files=backscatter_files,
        version=VERSION,
    script:
        "../workflow_scripts/sar_gather.py"


rule sar_coherence_tile:
    """Co-pol InSAR coherence over the epoch's selected pairs (baseline, season) on one
    processing tile of the grid (one job per tile)."""
    input:
        grid="results/grid/{region}.json",
        files=coherence_tile_files,
    output:
        "results/sar/{region}_{year}/{tile}/coherence.tif",
    log:
        "logs/sar_coherence/{region}_{year}/{tile}.log",
    benchmark:
        "logs/benchmarks/sar_coherence/{region}_{year}/{tile}.tsv"
    conda:
        "../envs/geo.yaml"
    threads: config["threads"]["ingest"]
    resources:
        # measured (benchmarks/ingest_memory.py): 117-120 MB for a 2000 px tile of 3 pairs
        mem_mb=scaled(1000),
        runtime=scaled(20),
    params:
        reducer=config["sar"]["coherence_reducer"],
        max_baseline_days=config["sar"]["max_baseline_days"],
        months=config["sar"]["months"],
        tile=tile_window,
        version=VERSION,
    script:
        "../workflow_scripts/sar_coherence.py"


rule sar_coherence:
    """The epoch's coherence over the region: a VRT mosaic of its tiles."""
    input:
        grid="results/grid/{region}.json",
        tiles=tile_files("results/sar/{region}_{year}/{tile}/coherence.tif"),
    output:
        "results/sar/{region}_{year}/coherence.vrt",
    log:
        "logs/sar_coherence/{region}_{year}.log",
    benchmark:
        "logs/benchmarks/sar_coherence/{region}_{year}.tsv"
    conda:
        "../envs/geo.yaml"
    threads: 1
    resources:
        mem_mb=scaled(500),
        runtime=scaled(5),
    params:
        windows=tile_windows,
        files=coherence_files,
        version=VERSION,
    script:
        "../workflow_scripts/sar_gather.py"


rule slc_coherence:
    """Coherence of a co-registered SLC pair (boxcar estimator), for the coherence stack."""
    input:
        unpack(slc_pair),
    output:
        "results/sar/{region}_{year}/slc/{d1}_{d2}_corr.tif",
    log:
        "logs/slc_coherence/{region}_{year}/{d1}_{d2}.log",
    benchmark:
        "logs/benchmarks/slc_coherence/{region}_{year}/{d1}_{d2}.tsv"
    wildcard_constraints:
        d1=r"\d{8}",
        d2=r"\d{8}",
    conda:
        "../envs/geo.yaml"
    threads: 1
    resources:
        mem_mb=scaled(8000),
        runtime=scaled(30),
    params:
        window=config["sar"]["slc_window"],
        version=VERSION,
    script:
        "../workflow_scripts/slc_coherence.py"
