"""Every notebook executes top to bottom (each asserts on what it shows), and is committed without outputs."""
import time
from pathlib import Path

import pytest

NOTEBOOKS = Path(__file__).resolve().parents[1] / "notebooks"
PATHS = sorted(NOTEBOOKS.glob("*.ipynb"))
CELL_TIMEOUT = 600  # seconds per cell: a cold start assembles the model and loads the embedder


def test_the_notebooks_are_there_and_stripped():
    import nbformat

    assert [p.stem for p in PATHS] == ["01_quickstart", "02_topic_lens", "03_your_own_logs", "04_evaluate_teams", "05_model_zoo"]
    for path in PATHS:
        nb = nbformat.read(path, as_version=4)
        nbformat.validate(nb)
        assert nb.metadata["kernelspec"]["name"] == "python3"
        for cell in nb.cells:
            if cell.cell_type == "code":
                assert cell.outputs == [] and cell.execution_count is None, f"{path.name}: strip outputs"


@pytest.fixture(scope="module")
def notebook_out(tmp_path_factory):
    """One output folder for all notebooks, so later ones reuse the store of earlier ones (as a user's would)."""
    return tmp_path_factory.mktemp("notebooks")


@pytest.mark.slow
@pytest.mark.parametrize("path", PATHS, ids=[p.stem for p in PATHS])
def test_notebook_runs_top_to_bottom(path, notebook_out, monkeypatch):
    import nbformat
    from nbclient import NotebookClient

    monkeypatch.setenv("TEAMGRAPH_NOTEBOOK_OUT", str(notebook_out))  # the kernel inherits this environment
    monkeypatch.setenv("MPLBACKEND", "module://matplotlib_inline.backend_inline")
    nb = nbformat.read(path, as_version=4)
    client = NotebookClient(nb, timeout=CELL_TIMEOUT, kernel_name="python3",
                            resources={"metadata": {"path": str(NOTEBOOKS)}})
    start = time.perf_counter()
    client.execute()  # raises CellExecutionError, with the failing cell and its traceback, on any error
    elapsed = time.perf_counter() - start
    outputs = [o for cell in nb.cells if cell.cell_type == "code" for o in cell.outputs]
    assert not [o for o in outputs if o.output_type == "error"]
    assert any("image/png" in o.get("data", {}) for o in outputs), "the notebook shows no figure"
    print(f"{path.name}: {elapsed:.1f} s")
