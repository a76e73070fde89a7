"""Dependencies run one way: pipelines -> assets -> sharegraph (docs/architecture.md).

The domain library imports neither Dagster nor the Dagster packages, not even inside a
function; assets never import the wiring in pipelines/.
"""

from __future__ import annotations

import ast
import pkgutil
import subprocess
import sys
from pathlib import Path

import sharegraph

ROOT = Path(__file__).resolve().parent.parent


def _imports(folder: str) -> list[tuple[str, int, str]]:
    """(file, line, imported module) of every import statement under ``folder``, at any depth."""
    out = []
    for path in sorted((ROOT / folder).rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                out += [(str(path.relative_to(ROOT)), node.lineno, a.name) for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
                out.append((str(path.relative_to(ROOT)), node.lineno, node.module))
    return out


def _top(module: str) -> str:
    return module.split(".")[0]


def test_sharegraph_imports_no_dagster() -> None:
    modules = [m.name for m in pkgutil.walk_packages(sharegraph.__path__, "sharegraph.")]
    assert "sharegraph.ingest.load" in modules and "sharegraph.metrics.influence" in modules
    code = (
        "import importlib, sys\n"
        f"for name in {modules!r}:\n"
        "    importlib.import_module(name)\n"
        "bad = sorted(m for m in sys.modules if m == 'dagster' or m.startswith('dagster.'))\n"
        "print(','.join(bad))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "", f"sharegraph imported Dagster modules: {out.stdout.strip()[:200]}"


def test_sharegraph_never_imports_assets_pipelines_or_dagster() -> None:
    bad = [i for i in _imports("sharegraph") if _top(i[2]) in ("assets", "pipelines", "dagster")]
    assert bad == [], f"the library must not import the Dagster side: {bad}"


def test_assets_never_import_pipelines() -> None:
    bad = [i for i in _imports("assets") if _top(i[2]) == "pipelines"]
    assert bad == [], f"assets/ must not import pipelines/ (wiring depends on assets): {bad}"


def test_tests_do_not_import_each_other() -> None:
    bad = [i for i in _imports("tests") if i[2].startswith("tests.") and
           i[2].rsplit(".", 1)[-1].startswith("test_")]
    assert bad == [], f"shared builders go in tests/helpers.py or fixtures: {bad}"
