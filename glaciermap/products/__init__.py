"""Products: glacier outlines, changes between epochs, metrics, accuracy tables, plots."""
