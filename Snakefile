# glaciermap: glacier outlines from satellite scenes.
# Report: snakemake --report report.html (maps, training curves, benchmark table).
# Stages: demo world -> grid -> optical / terrain / SAR -> features -> labels -> tiles
#         -> training (RF, U-Net, SegNet, DeepLabV3+) -> sliding-window prediction
#         -> outlines -> evaluation, change between epochs
import os

from snakemake.utils import min_version

min_version("9.0")


# config/config.yaml only when no --configfile is given: a user's config runs exactly what it
# declares (Snakemake would otherwise merge it into this one, demo regions included).
if not workflow.overwrite_configfiles:

    configfile: "config/config.yaml"


include: "rules/common.smk"


# GDAL's block cache defaults to 5 % of RAM: a step reading single bands of multi-band tiles
# fills it, so its peak memory depended on the node (1.48 GB against 0.32 GB with 256 MB for
# the 4000 px evaluation, and slower). Every job (local or on SLURM, which parses this file
# again) gets processing: gdal_cache_mb unless the environment sets GDAL_CACHEMAX.
os.environ.setdefault("GDAL_CACHEMAX", str(config["processing"]["gdal_cache_mb"]))


include: "rules/reference_common.smk"
include: "rules/demo.smk"
include: "rules/ingest.smk"
include: "rules/features.smk"
include: "rules/reference.smk"
include: "rules/training.smk"
include: "rules/outlines.smk"
include: "rules/report.smk"
include: "rules/acquire.smk"


# Metadata-only steps (a grid JSON, a VRT of the tiles: milliseconds at any region size) run in
# the main Snakemake process; on a cluster a job of their own would only wait in the queue.
localrules:
    region_grid,
    optical_composite,
    terrain,
    sar_backscatter,
    sar_coherence,
    features,
    stac_search,
    stac_download,


rule all:
    default_target: True
    input:
        all_targets(),


# download: true: `snakemake --cores 4 acquire` fetches every input of the configured real
# regions/years through STAC (rules/acquire.smk); then run the workflow as usual.
if config.get("download"):

    rule acquire:
        input:
            acquisition_targets(config),
