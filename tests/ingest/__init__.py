"""Tests of ingest (mirrors the library's folders)."""
