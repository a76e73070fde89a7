"""Tests of metrics (mirrors the library's folders)."""
