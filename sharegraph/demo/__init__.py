"""The demo world generator with planted ground truth (docs/demo-world.md)."""
