"""Stage 1, ingest: export files -> validated staging.* and quarantine.* (docs/ingest.md)."""
