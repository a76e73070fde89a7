"""Tests of graph (mirrors the library's folders)."""
