"""The sandbox cache key: it changes with any module of the package and with library versions,
so an edited chat template or an upgraded jax can never be served a stale policy."""

import shutil
import sys
from pathlib import Path

import pytest

from alignment import sandbox
from alignment.sandbox import build


@pytest.fixture
def package_copy(tmp_path):
    """A copy of the ``alignment`` package's sources, to edit."""
    copy = tmp_path / "alignment"
    shutil.copytree(build.PACKAGE, copy, ignore=shutil.ignore_patterns("__pycache__"))
    return copy


@pytest.mark.parametrize(
    "module", ["models/tokenizer.py", "sandbox/tokenizer.py", "data/tokenization.py", "training/steps.py", "parallel/rules.py"]
)
def test_editing_any_module_the_build_runs_changes_the_key(package_copy, module):
    before = build.code_digest(package_copy)
    path = package_copy / module
    path.write_text(path.read_text() + "\n# edited\n")
    assert build.code_digest(package_copy) != before


def test_the_chat_template_is_part_of_the_key(package_copy):
    path = package_copy / "sandbox" / "tokenizer.py"
    before = build.code_digest(package_copy)
    text = path.read_text()
    assert "'<|im_start|>assistant\\n'" in text
    path.write_text(text.replace("'<|im_start|>assistant\\n'", "'<|im_start|>assistant '"))
    assert build.code_digest(package_copy) != before


def test_absolute_imports_are_read_from_every_scope_and_relative_ones_left_out(tmp_path):
    path = tmp_path / "module.py"
    path.write_text('"""import docstring\nfrom text import nothing"""\nimport a.b as ab, p\nfrom c import (d,\n    dd)\n'
                    "from . import e\nfrom .f import g\n# import comment\n"
                    "def h():\n    import i as j; import q\n    if j: from r.s import t\n    class K:\n        from l.m import n\n"
                    "    raise ValueError('import x') from None\n\ndef u():\n    yield from v\n")
    assert build.absolute_imports(path) == {"a.b", "p", "c", "i", "q", "r.s", "l.m"}


def test_library_versions_are_part_of_the_key(monkeypatch):
    versions = build.library_versions()
    assert {"jax", "flax", "optax", "numpy", "tokenizers", "orbax-checkpoint"} <= set(versions)
    key = sandbox.cache_key(sandbox.SandboxConfig())
    monkeypatch.setattr(build.importlib.metadata, "version", lambda name: "0.0.0" if name == "jax" else versions.get(name, "?"))
    build.library_versions.cache_clear()
    try:
        assert sandbox.cache_key(sandbox.SandboxConfig()) != key
    finally:
        build.library_versions.cache_clear()


def test_every_loaded_alignment_module_is_hashed():
    sandbox.sandbox_tokenizer().apply_chat_template([{"role": "user", "content": "hi"}])
    hashed = {p.resolve() for p in build.PACKAGE.rglob("*.py")}
    # alignment.configs and alignment.launch (the repository's configs/ and launch/ folders, see
    # setup.py) sit above the library: nothing the sandbox builds with imports them.
    wiring = ("alignment.configs", "alignment.launch")
    loaded = {Path(m.__file__).resolve() for name, m in sys.modules.items()
              if name.split(".")[0] == "alignment" and not name.startswith(wiring)}
    assert loaded and loaded <= hashed, loaded - hashed
