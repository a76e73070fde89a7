"""Tests of pipelines (mirrors the library's folders)."""
