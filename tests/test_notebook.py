"""notebooks/quickstart.ipynb runs top to bottom in a fresh kernel on the smoke config, draws
its plots inline and writes the report; it is stored without outputs."""

import json
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOK = ROOT / "notebooks" / "quickstart.ipynb"


def test_the_notebook_is_stored_without_outputs_and_with_a_python3_kernel():
    nb = json.loads(NOTEBOOK.read_text())
    assert nb["nbformat"] == 4 and nb["metadata"]["kernelspec"]["name"] == "python3"
    code = [cell for cell in nb["cells"] if cell["cell_type"] == "code"]
    assert code and all(not cell["outputs"] and cell["execution_count"] is None for cell in code)


def _kernel_manager():
    """A kernel of this interpreter: jupyter_client's built-in ipykernel spec (argv from
    ``sys.executable``), looked up in no kernel directory, so that a "python3" spec installed
    elsewhere (the user's, another environment's) cannot point the test at another Python."""
    from jupyter_client.kernelspec import KernelSpecManager
    from jupyter_client.manager import AsyncKernelManager

    specs = KernelSpecManager(kernel_dirs=[], ensure_native_kernel=True)
    manager = AsyncKernelManager(kernel_name="python3", kernel_spec_manager=specs)
    assert manager.kernel_spec.argv[0] == sys.executable, manager.kernel_spec.argv
    return manager


def test_the_quickstart_notebook_runs_on_the_smoke_config(request, tmp_path, monkeypatch):
    for module in ("nbformat", "nbclient", "ipykernel"):
        pytest.importorskip(module, reason=f"{module} runs the notebook; it is in the [test] extra (pip install -e '.[test]')")
    import nbclient
    import nbformat
    from nbclient.exceptions import CellExecutionError

    box = request.getfixturevalue("box")  # built only when the notebook can run
    workdir = tmp_path / "workdir"
    # The kernel inherits this environment, JAX_COMPILATION_CACHE_DIR (tests/conftest.py) included.
    monkeypatch.setenv("ALIGNMENT_NOTEBOOK_SMOKE", "1")
    monkeypatch.setenv("ALIGNMENT_NOTEBOOK_WORKDIR", str(workdir))
    monkeypatch.setenv("ALIGNMENT_SANDBOX_CACHE", str(box.directory.parent))  # the session's sandbox, already built
    monkeypatch.setenv("MPLBACKEND", "agg")  # the notebook's %matplotlib inline must win over it

    nb = nbformat.read(NOTEBOOK, as_version=4)
    client = nbclient.NotebookClient(nb, km=_kernel_manager(), timeout=600, resources={"metadata": {"path": str(tmp_path)}})
    try:
        client.execute(cleanup_kc=True)  # shut the kernel down afterwards (nbclient leaves a kernel it did not start running)
    except CellExecutionError as error:
        pytest.fail(f"a cell of {NOTEBOOK.name} failed:\n{error}", pytrace=False)

    outputs = [output for cell in nb.cells if cell.cell_type == "code" for output in cell.outputs]
    text = "".join(output.get("text", "") for output in outputs)
    assert "smoke config: True" in text and "win rate over pi_0 (and)" in text, text[-3000:]
    assert sum("image/png" in output.get("data", {}) for output in outputs if output.output_type == "display_data") >= 2
    assert any("text/markdown" in output.get("data", {}) and "| claim |" in output.data["text/markdown"] for output in outputs)

    results = json.loads((workdir / "report" / "results.json").read_text())
    assert results["experiment"] == "smoke" and [run["name"] for run in results["runs"]] == ["lsc_and-rloo-kl0.2"]
    assert "## Claims" in (workdir / "report" / "report.md").read_text()
    assert (workdir / "report" / "win_rate_vs_kl.png").stat().st_size > 0
    assert not (tmp_path / "runs").exists()  # everything went to the workdir it was given
