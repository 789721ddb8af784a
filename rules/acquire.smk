# Optional acquisition of inputs through STAC APIs (glaciermap.ingest.stac), for `download:
# true`: a pinned search per region/year/kind (optical, sar, dem), then its download into the
# data layout the input catalogue reads ({data_dir}/{region}/{year}/{optical,sar}/ and
# {data_dir}/dem/). The pinned ItemCollection is the download's rerun trigger: it reruns when
# the selection changes. A changed search setting reruns the search; -R stac_search searches
# again for scenes published since. Needs rules/common.smk (config, CATALOG, VERSION, scaled).
import os

from snakemake_interface_executor_plugins.settings import DeploymentMethod

from glaciermap.ingest.stac import (
    acquisition_targets,
    download_cli_args,
    search_cli_args,
)

# The interpreter of the two shell steps, as Snakemake picks it for script: steps: the
# environment's `python` under --sdm conda, else the one running Snakemake (relative to the
# working directory when inside it, so a moved clone does not rerun the search).
STAC_PYTHON = (
    "python"
    if DeploymentMethod.CONDA in workflow.deployment_settings.deployment_method
    else (
        os.path.relpath(sys.executable)
        if not os.path.relpath(sys.executable).startswith("../..")
        else sys.executable
    )
)


rule stac_search:
    """Search a STAC API for a region/year's scenes (kind: optical, sar, dem) and pin the
    chosen items as an ItemCollection (equal selection, equal bytes)."""
    output:
        "results/stac/{region}_{year}/{kind}.json",
    log:
        "logs/stac_search/{region}_{year}_{kind}.log",
    benchmark:
        "logs/benchmarks/stac_search/{region}_{year}_{kind}.tsv"
    wildcard_constraints:
        kind="optical|sar|dem",
    conda:
        "../envs/geo.yaml"
    threads: 1
    resources:
        mem_mb=scaled(500),
        runtime=scaled(10),
    params:
        python=STAC_PYTHON,
        args=lambda w: search_cli_args(config, w.region, w.year, w.kind),
        version=VERSION,
    shell:
        "{params.python:q} -m glaciermap.ingest.stac search {params.args} --out {output:q} "
        "2> {log:q}"


checkpoint stac_download:
    """Download the pinned items' assets into the data layout (resumable, verified, under
    the names the input catalogue recognises); the manifest lists the files. A checkpoint:
    input functions can wait for it, then list the data folder again."""
    input:
        "results/stac/{region}_{year}/{kind}.json",
    output:
        "results/stac/{region}_{year}/{kind}.files.json",
    log:
        "logs/stac_download/{region}_{year}_{kind}.log",
    benchmark:
        "logs/benchmarks/stac_download/{region}_{year}_{kind}.tsv"
    wildcard_constraints:
        kind="optical|sar|dem",
    conda:
        "../envs/geo.yaml"
    threads: 1
    resources:
        mem_mb=scaled(500),
        runtime=scaled(240),
        stac_downloads=1,  # cap parallel downloads with --resources stac_downloads=N
    params:
        python=STAC_PYTHON,
        args=lambda w: download_cli_args(
            config, w.region, w.year, w.kind, CATALOG.data_dir(w.region)
        ),
        version=VERSION,
    shell:
        "{params.python:q} -m glaciermap.ingest.stac download {input:q} {params.args} "
        "--manifest {output:q} 2> {log:q}"
