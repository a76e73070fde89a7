"""Stage 3, metrics: influence, cascades, growth, affinity and expansion marts."""
