"""The analyst notebooks (notebooks/*.py, jupytext percent scripts) run clean on a real warehouse.

Each notebook is converted with jupytext and executed cell by cell in a python3 kernel
(nbclient) against the published warehouse of the session's pipeline run. The notebooks
carry their own ``assert``s on invariants (PageRank vs NetworkX, virality vs Wiener index,
lift from counts, batch reconciliation, lineage back to the source row), so a clean run is
a real test; here we also check that the outputs name what the warehouse says they should.
"""

from __future__ import annotations

from pathlib import Path

import jupytext
import nbformat
import pytest
from jupyter_client.kernelspec import KernelSpecManager, NoSuchKernel
from nbclient import NotebookClient

from sharegraph.core.warehouse import connect

ROOT = Path(__file__).resolve().parents[2]
NOTEBOOKS = ROOT / "notebooks"
NAMES = ["01_influence_exploration", "02_category_affinity", "03_sql_cookbook"]


@pytest.fixture(scope="module")
def kernel_name(tmp_path_factory: pytest.TempPathFactory, monkeypatch_module) -> str:
    """A python3 kernel running this interpreter: the venv's spec, else one made in a tmp dir."""
    try:
        KernelSpecManager().get_kernel_spec("python3")
        return "python3"
    except NoSuchKernel:
        from ipykernel.kernelspec import install

        prefix = tmp_path_factory.mktemp("kernels")
        install(prefix=str(prefix), kernel_name="python3")
        monkeypatch_module.setenv("JUPYTER_PATH", str(prefix / "share" / "jupyter"))
        return "python3"


@pytest.fixture(scope="module")
def monkeypatch_module():
    mp = pytest.MonkeyPatch()
    yield mp
    mp.undo()


def _execute(name: str, kernel: str) -> nbformat.NotebookNode:
    nb = jupytext.read(NOTEBOOKS / f"{name}.py")
    client = NotebookClient(nb, timeout=120, kernel_name=kernel, allow_errors=False,
                            resources={"metadata": {"path": str(ROOT)}})
    client.execute()
    return nb


def _text(nb: nbformat.NotebookNode) -> str:
    parts = []
    for cell in nb.cells:
        for out in cell.get("outputs", []):
            if out.get("output_type") == "stream":
                parts.append(out.get("text", ""))
            elif "data" in out:
                parts.append(out["data"].get("text/plain", ""))
    return "\n".join(parts)


def _expected(warehouse: Path) -> dict[str, list[str]]:
    """Strings each notebook's output must contain, read independently from the warehouse."""
    con = connect(warehouse, read_only=True)
    try:
        def one(sql: str):
            return con.execute(sql).fetchall()[0][0]

        top_agent = one("SELECT person_id FROM marts.agent_influence WHERE is_agent "
                        "ORDER BY downstream_gmv DESC, person_id LIMIT 1")
        top_direct = one("SELECT person_id FROM marts.agent_influence "
                         "ORDER BY direct_gmv DESC, person_id LIMIT 1")
        largest = one("SELECT root_share_id FROM marts.cascades "
                      "ORDER BY size DESC, structural_virality DESC, root_share_id LIMIT 1")
        merchant = one("SELECT merchant_id FROM marts.expansion_recommendations "
                       "ORDER BY expected_incremental_gmv_yuan DESC, merchant_id LIMIT 1")
        best_pair = con.execute(
            "SELECT category_a, category_b FROM marts.category_affinity "
            "WHERE scope = 'all' AND basis = 'customer' AND meets_min_count "
            "AND category_a < category_b ORDER BY lift DESC, category_a, category_b LIMIT 1"
        ).fetchall()[0]
        paid = one("SELECT sum(amount) FROM staging.orders WHERE status = 'paid'")
    finally:
        con.close()
    return {
        "01_influence_exploration": [f"top agent by downstream GMV: {top_agent}",
                                     f"top person by direct GMV: {top_direct}",
                                     f"downline of {top_agent}:", f"cascade {largest}:",
                                     "max |ours - networkx|"],
        "02_category_affinity": [f"merchant: {merchant}",
                                 f"top pair {best_pair[0]} × {best_pair[1]}"],
        "03_sql_cookbook": [f"paid GMV ¥{paid:,.2f}", "reconciles", "lineage finds"],
    }


@pytest.mark.parametrize("name", NAMES)
def test_notebook_executes(name: str, pipeline_run: dict, kernel_name: str,
                           monkeypatch: pytest.MonkeyPatch) -> None:
    warehouse = Path(pipeline_run["warehouse"])
    monkeypatch.setenv("SHAREGRAPH_WAREHOUSE", str(warehouse))
    monkeypatch.delenv("SHAREGRAPH_MERCHANT", raising=False)
    nb = _execute(name, kernel_name)

    code_cells = [c for c in nb.cells if c.cell_type == "code"]
    assert code_cells and all(c.get("execution_count") for c in code_cells), "a cell did not run"
    errors = [o for c in code_cells for o in c.get("outputs", [])
              if o.get("output_type") == "error"]
    assert not errors, errors
    assert nb.cells[0].cell_type == "markdown" and "How to open" in nb.cells[0].source

    text = _text(nb)
    assert str(warehouse) in text  # it read the warehouse it was given, not the default
    for needle in _expected(warehouse)[name]:
        assert needle in text, f"{name}: output lacks {needle!r}"


def test_notebooks_are_percent_scripts() -> None:
    """Every notebook is a jupytext percent script that round-trips and runs under this Python."""
    found = sorted(p.stem for p in NOTEBOOKS.glob("*.py"))
    assert found == NAMES
    for name in NAMES:
        path = NOTEBOOKS / f"{name}.py"
        nb = jupytext.read(path)
        assert nb.metadata["kernelspec"]["name"] == "python3"
        md = [c for c in nb.cells if c.cell_type == "markdown"]
        code = [c for c in nb.cells if c.cell_type == "code"]
        assert len(md) >= 4 and len(code) >= 6
        assert "import polars as pl" in "\n".join(c.source for c in code)
        assert sum(c.source.count("assert ") for c in code) >= 4
        compile(path.read_text(encoding="utf-8"), str(path), "exec")
