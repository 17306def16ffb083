"""The README's promises: its example prints what it says, and CI runs its test command."""

import contextlib
import io
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text()


def test_readme_example_prints_what_it_says():
    match = re.search(r"## The rewards API in ten lines\n\n```python\n(.*?)```\n\nprints\n\n```\n(.*?)```", README, re.S)
    assert match, "README example section not found"
    code, expected = match.groups()
    assert len(code.strip().splitlines()) <= 14
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        exec(compile(code, "README.md", "exec"), {})
    assert out.getvalue() == expected


def test_ci_runs_the_readme_test_command():
    match = re.search(r"## Test\n.*?```bash\n(.*?)\n```", README, re.S)
    assert match, "README test command not found"
    command = match.group(1).strip()
    ci_lines = [line.strip() for line in (ROOT / ".ci" / "run").read_text().splitlines()]
    assert command in ci_lines
