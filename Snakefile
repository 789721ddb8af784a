# glaciermap: glacier outlines from satellite scenes.
# Stages: demo world -> grid -> optical / terrain / SAR -> features -> labels -> tiles
#         -> training (RF, U-Net) -> sliding-window prediction -> outlines -> evaluation
from snakemake.utils import min_version

min_version("9.0")


configfile: "config/config.yaml"


include: "rules/common.smk"
include: "rules/demo.smk"
include: "rules/ingest.smk"
include: "rules/features.smk"
include: "rules/training.smk"
include: "rules/outlines.smk"


rule all:
    default_target: True
    input:
        all_targets(),
