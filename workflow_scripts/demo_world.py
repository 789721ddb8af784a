"""Rule demo_world: generate the synthetic demo world."""

from glaciermap.core.logs import step_logging
from glaciermap.synthetic.demo import generate_demo

with step_logging(snakemake.log[0]):
    generate_demo({"demo": snakemake.params.demo, "regions": snakemake.params.regions})
