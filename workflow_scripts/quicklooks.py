"""Rule quicklooks: report maps of one region/year."""

from glaciermap.logs import step_logging
from glaciermap.plots import false_colour, layer_map

with step_logging(snakemake.log[0]):
    inp, out, wc = snakemake.input, snakemake.output, snakemake.wildcards
    name = f"{wc.region} {wc.year}"
    false_colour(inp.optical, out.false_colour, inp.outlines, inp.get("inventory"), name)
    layer_map(
        inp.probability,
        "probability",
        out.probability,
        "magma",
        "glacier probability",
        0,
        1,
        f"{name}: probability",
    )
    layer_map(inp.slope, "slope", out.slope, "cividis", "slope (degrees)", 0, 60, f"{name}: slope")
    layer_map(
        inp.get("coherence"),
        "sar_copol_coherence",
        out.coherence,
        "viridis",
        "co-pol coherence",
        0,
        1,
        f"{name}: InSAR coherence",
    )
    layer_map(
        inp.get("backscatter"),
        "sar_copol_db",
        out.backscatter,
        "gray",
        "co-pol backscatter (dB)",
        -25,
        0,
        f"{name}: SAR backscatter",
    )
    layer_map(inp.dem, "elevation", out.elevation, "terrain", "elevation (m)", title=f"{name}: DEM")
