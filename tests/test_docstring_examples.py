"""Every code example in a docstring runs as written.

An example is an indented block (4 spaces, after a blank line) in a module, class or function
docstring of ``alignment/``, ``configs/``, ``launch/`` or ``benchmarks/`` that parses as Python;
formulas and shell commands do not parse and are not examples. Each runs in a fresh namespace in
a temporary working directory. Examples that load the sandbox use the session's ``box`` cache;
examples that import seqio or tensorflow_datasets skip without the ``[seqio]`` extra.
"""

import ast
import contextlib
import io
import json
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
FOLDERS = ("alignment", "configs", "launch", "benchmarks")


def _blocks(doc: str):
    lines = doc.splitlines()
    i = 0
    while i < len(lines):
        if lines[i].startswith("    ") and (i == 0 or not lines[i - 1].strip()):
            j = i
            while j < len(lines) and (lines[j].startswith("    ") or not lines[j].strip()):
                j += 1
            yield textwrap.dedent("\n".join(lines[i:j])).strip() + "\n"
            i = j
        else:
            i += 1


def _parses(code: str) -> bool:
    try:
        ast.parse(code)
    except SyntaxError:
        return False
    return True


def _examples():
    for folder in FOLDERS:
        for path in sorted((ROOT / folder).rglob("*.py")):
            name = path.relative_to(ROOT).as_posix()
            tree = ast.parse(path.read_text())
            nodes = [tree, *(n for n in ast.walk(tree) if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)))]
            for node in nodes:
                doc = ast.get_docstring(node, clean=True)
                for k, code in enumerate(_blocks(doc or "")):
                    if _parses(code):
                        yield pytest.param(name, code, id=f"{name}:{getattr(node, 'name', 'module')}:{k}")


EXAMPLES = list(_examples())


def test_the_examples_are_found():
    names = {p.values[0] for p in EXAMPLES}
    assert {"alignment/sandbox/__init__.py", "alignment/data/__init__.py", "configs/__init__.py"} <= names


@pytest.mark.parametrize("name, code", EXAMPLES)
def test_docstring_example_runs(name, code, request, monkeypatch, tmp_path):
    if "seqio" in code or "tensorflow_datasets" in code:
        pytest.importorskip("seqio")
        pytest.importorskip("tensorflow_datasets")
    if "load_sandbox(" in code:
        box = request.getfixturevalue("box")
        from alignment.sandbox import build

        # The session's sandbox is the example's default one: a cache hit, even if a module
        # was edited since it was built (the key hashes every module's source).
        digest = json.loads((box.directory / "config.json").read_text())["code"]
        monkeypatch.setattr(build, "code_digest", lambda *args, **kwargs: digest)
        monkeypatch.setenv("ALIGNMENT_SANDBOX_CACHE", str(box.directory.parent))
    monkeypatch.chdir(tmp_path)
    with contextlib.redirect_stdout(io.StringIO()):
        exec(compile(code, name, "exec"), {"__name__": "__example__"})
