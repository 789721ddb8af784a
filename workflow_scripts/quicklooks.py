"""Rule quicklooks: report maps of one region/year (a placeholder PNG for an absent layer)."""

from glaciermap.core.logs import step_logging
from glaciermap.products.plots import false_colour, layer_map, skipped_inputs

with step_logging(snakemake.log[0]):
    inp, out, wc = snakemake.input, snakemake.output, snakemake.wildcards
    name = f"{wc.region} {wc.year}"
    note = skipped_inputs(inp.get("optical"), inp.get("backscatter"), inp.get("coherence"))
    false_colour(
        inp.get("optical"),
        out.false_colour,
        inp.get("outlines"),
        inp.get("inventory"),
        f"{name} ({note})" if note else name,
    )
    maps = [  # input, band, output, colour map, label, vmin, vmax, title, message if absent
        ("probability", "probability", "probability", "magma", "glacier probability", 0, 1,
         "probability", "no glacier probability"),
        ("slope", "slope", "slope", "cividis", "slope (degrees)", 0, 60, "slope", "no DEM"),
        ("coherence", "sar_copol_coherence", "coherence", "viridis", "co-pol coherence", 0, 1,
         "InSAR coherence", "no InSAR coherence"),
        ("backscatter", "sar_copol_db", "backscatter", "gray", "co-pol backscatter (dB)", -25, 0,
         "SAR backscatter", "no SAR backscatter"),
        ("dem", "elevation", "elevation", "terrain", "elevation (m)", None, None, "DEM", "no DEM"),
    ]  # fmt: skip
    for key, band, dest, cmap, label, vmin, vmax, title, absent in maps:
        layer_map(
            inp.get(key),
            band,
            getattr(out, dest),
            cmap,
            label,
            vmin,
            vmax,
            f"{name}: {title}",
            missing=f"{absent} for {name}",
        )
