"""The domain library stays free of Dagster: every sharegraph module imports without it."""

from __future__ import annotations

import pkgutil
import subprocess
import sys

import sharegraph


def test_sharegraph_imports_no_dagster() -> None:
    modules = [m.name for m in pkgutil.walk_packages(sharegraph.__path__, "sharegraph.")]
    assert "sharegraph.cli" in modules
    code = (
        "import importlib, sys\n"
        f"for name in {modules!r}:\n"
        "    importlib.import_module(name)\n"
        "bad = sorted(m for m in sys.modules if m == 'dagster' or m.startswith('dagster.'))\n"
        "print(','.join(bad))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "", f"sharegraph imported Dagster modules: {out.stdout.strip()[:200]}"
