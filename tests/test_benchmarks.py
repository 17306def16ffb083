"""Every benchmark answers --help without the [parity] extra and says how long it runs.

Benchmarks time things; tests never do. These only check that a newcomer can read what a
benchmark does before installing torch, and knows how long it will take.
"""

import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
BENCHMARKS = sorted((ROOT / "benchmarks").glob("*.py"))


@pytest.fixture(scope="module")
def without_torch(tmp_path_factory):
    """A PYTHONPATH entry on which ``import torch`` and ``import transformers`` fail."""
    hidden = tmp_path_factory.mktemp("hidden")
    for name in ("torch", "transformers"):
        (hidden / f"{name}.py").write_text(f"raise ImportError('{name} is hidden by tests/test_benchmarks.py')\n")
    return str(hidden)


@pytest.mark.parametrize("path", BENCHMARKS, ids=lambda p: p.name)
def test_help_works_without_torch(path, without_torch):
    result = subprocess.run(
        [sys.executable, str(path), "--help"], cwd=ROOT, env={"PYTHONPATH": without_torch, "PATH": "/usr/bin:/bin"},
        capture_output=True, text=True, timeout=300,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.startswith("usage:")


@pytest.mark.parametrize("path", BENCHMARKS, ids=lambda p: p.name)
def test_docstring_says_how_long_it_runs(path):
    doc = path.read_text().split('"""')[1]
    assert re.search(r"\b(takes|runs for)\s+(about|under|less than)\b[^.]*\b(seconds|minutes?)\b", doc), path.name
