"""Sensor ingestion: the input catalogue, optical scenes and compositing, SAR backscatter,
InSAR coherence, DEM/terrain and glacier inventories (labels)."""
