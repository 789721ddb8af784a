"""Rule demo_world: generate the synthetic demo world."""

from glaciermap.demo import generate_demo
from glaciermap.logs import step_logging

with step_logging(snakemake.log[0]):
    generate_demo({"demo": snakemake.params.demo, "regions": snakemake.params.regions})
