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


def test_jobs_schedules_and_sensors_live_in_pipelines() -> None:
    """The wiring lives in pipelines/ only: no job, schedule or sensor is defined in assets/."""
    bad = []
    for path in sorted((ROOT / "assets").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if (isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name)
                    and node.value.id == "dg" and node.attr in (
                        "job", "define_asset_job", "schedule", "sensor", "run_status_sensor")):
                bad.append(f"{path.relative_to(ROOT)}:{node.lineno} dg.{node.attr}")
    assert bad == [], f"jobs, schedules and sensors belong in pipelines/: {bad}"


def test_asset_keys_are_declared_only_in_assets_keys() -> None:
    """Every asset module takes its keys from assets/keys.py (built from the contract)."""
    bad = []
    for path in sorted((ROOT / "assets").rglob("*.py")):
        if path.name == "keys.py":
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Call) and (
                    (isinstance(node.func, ast.Attribute) and node.func.attr == "AssetKey")
                    or (isinstance(node.func, ast.Name) and node.func.id == "AssetKey")):
                bad.append(f"{path.relative_to(ROOT)}:{node.lineno}")
            if isinstance(node, ast.keyword) and node.arg == "key_prefix":
                bad.append(f"{path.relative_to(ROOT)}:{node.value.lineno} key_prefix")
    assert bad == [], f"asset keys belong in assets/keys.py: {bad}"


def test_only_core_config_reads_sharegraph_environment_variables() -> None:
    """Every setting is a field of Settings: no other module names a SHAREGRAPH_* variable in
    code (docstrings may mention them). The crash tests' fault hooks are not settings."""
    allowed = {"sharegraph/core/config.py"}
    hooks = {"SHAREGRAPH_FAULT_AFTER", "SHAREGRAPH_FAULT_SIGNAL", "SHAREGRAPH_FAULT_PAUSE_S"}
    bad = []
    for folder in ("sharegraph", "assets", "pipelines"):
        for path in sorted((ROOT / folder).rglob("*.py")):
            rel = str(path.relative_to(ROOT))
            if rel in allowed:
                continue
            for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
                if (isinstance(node, ast.Constant) and isinstance(node.value, str)
                        and node.value.startswith("SHAREGRAPH_") and node.value not in hooks):
                    bad.append(f"{rel}:{node.lineno} {node.value}")
    assert bad == [], f"read settings through sharegraph.core.config.Settings: {bad}"


def test_tests_do_not_import_each_other() -> None:
    bad = [i for i in _imports("tests") if i[2].startswith("tests.") and
           i[2].rsplit(".", 1)[-1].startswith("test_")]
    assert bad == [], f"shared builders go in tests/helpers.py or fixtures: {bad}"
