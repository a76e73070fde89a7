"""The core every stage shares: the data contract, settings, the warehouse, SQL helpers and array kernels."""
