"""Raster core: errors, logging, the region grid, raster I/O and windows, warping."""
