"""Machine learning: feature sets and stacks, training chips, models, training, prediction.
The only subpackage that imports torch."""
