"""Generators of docs/warehouse.md and docs/data-contract.md from the code's own definitions."""
