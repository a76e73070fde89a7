"""Tests of reports (mirrors the library's folders)."""
