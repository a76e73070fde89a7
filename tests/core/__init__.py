"""Tests of core (mirrors the library's folders)."""
