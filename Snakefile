# glaciermap: glacier outlines from satellite scenes.
# Report: snakemake --report report.html (maps, training curves, benchmark table).
# Stages: demo world -> grid -> optical / terrain / SAR -> features -> labels -> tiles
#         -> training (RF, U-Net, SegNet, DeepLabV3+) -> sliding-window prediction
#         -> outlines -> evaluation, change between epochs
from snakemake.utils import min_version

min_version("9.0")


# config/config.yaml only when no --configfile is given: a user's config runs exactly what it
# declares (Snakemake would otherwise merge it into this one, demo regions included).
if not workflow.overwrite_configfiles:

    configfile: "config/config.yaml"


include: "rules/common.smk"
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
