"""Run the whole asset graph in-process: what ``sharegraph run`` and ``sharegraph demo`` call."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import dagster as dg

from pipelines.resources import WarehouseResource
from sharegraph import paths
from sharegraph.warehouse import check_writable

PROJECT_ROOT = Path(__file__).resolve().parent.parent


def ensure_dagster_home() -> Path:
    """Point DAGSTER_HOME at the project's state directory, with the project's dagster.yaml."""
    home = Path(os.environ.get("DAGSTER_HOME") or paths.state_dir() / "dagster")
    home.mkdir(parents=True, exist_ok=True)
    os.environ["DAGSTER_HOME"] = str(home)
    source = PROJECT_ROOT / "dagster.yaml"
    target = home / "dagster.yaml"
    if source.is_file() and (not target.exists() or target.read_bytes() != source.read_bytes()):
        shutil.copyfile(source, target)
    return home


def run_pipeline(
    *,
    input_dir: str | os.PathLike[str],
    warehouse: str | os.PathLike[str],
    reports_dir: str | os.PathLike[str],
    config_file: str | os.PathLike[str] | None = None,
) -> dg.ExecuteInProcessResult:
    """Materialize every asset (and run every check) of the code location in this process.

    Raises ``sharegraph.warehouse.WarehouseError`` before any work when the warehouse
    location is unusable, and ``dagster.DagsterExecutionStepExecutionError`` (or the
    underlying error) when a step fails; the published warehouse is then left as it was.
    """
    from pipelines.definitions import load_pipeline

    ensure_dagster_home()
    resource = WarehouseResource(
        warehouse=str(Path(warehouse).expanduser().resolve()),
        input_dir=str(Path(input_dir).expanduser().resolve()),
        reports_dir=str(Path(reports_dir).expanduser().resolve()),
        config_file=str(config_file) if config_file else None,
    )
    check_writable(resource.paths)
    found, checks = load_pipeline()
    selection = [*found, *checks]
    with dg.DagsterInstance.get() as instance:
        return dg.materialize(selection, resources={"warehouse": resource}, instance=instance)
