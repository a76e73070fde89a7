"""Tests of demo (mirrors the library's folders)."""
