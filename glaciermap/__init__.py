"""glaciermap: glacier outlines from satellite scenes.

The package holds all the logic of the workflow; it never imports snakemake.
"""

__version__ = "0.6.0"
