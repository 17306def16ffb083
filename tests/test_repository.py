"""The repository's own contracts: test layout, shared-data tests under CI, packaging."""

import ast
import importlib.metadata
import os
import re
import subprocess
import sys
from pathlib import Path

import setuptools

ROOT = Path(__file__).resolve().parents[1]
TESTS = ROOT / "tests"


def test_no_test_module_imports_another():
    """Shared helpers and fixtures live in tests/conftest.py, not in other test files."""
    test_modules = {p.stem for p in TESTS.glob("test_*.py")}
    offenders = []
    for path in TESTS.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else []
            names += [node.module or ""] if isinstance(node, ast.ImportFrom) else []
            offenders += [f"{path.name} imports {n}" for n in names if n.split(".")[0] in test_modules | {"conftest"}]
    assert not offenders


def _run_shared_data_test(ci: str | None):
    env = {k: v for k, v in os.environ.items() if k != "CI"}
    env["ALIGNMENT_SHARED_DATA"] = str(ROOT / "no-such-shared-data")
    if ci is not None:
        env["CI"] = ci
    test = "tests/test_data_formats.py::test_alpaca_eval_identical_outputs_are_counted"
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", test],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=300,
    )


def test_missing_shared_data_skips_locally_and_fails_under_ci():
    local = _run_shared_data_test(None)
    assert local.returncode == 0 and "1 skipped" in local.stdout, local.stdout + local.stderr
    ci = _run_shared_data_test("true")
    assert ci.returncode == 1 and "1 error" in ci.stdout and "CI=true" in ci.stdout, ci.stdout + ci.stderr


def _setup_arguments(monkeypatch) -> dict:
    captured = {}
    monkeypatch.setattr(setuptools, "setup", lambda **kwargs: captured.update(kwargs))
    monkeypatch.chdir(ROOT)
    exec(compile((ROOT / "setup.py").read_text(), "setup.py", "exec"), {"__name__": "__main__"})
    return captured


def test_setup_installs_everything_under_alignment(monkeypatch):
    """Every package lands under ``alignment``; configs/ and launch/ as alignment.configs and
    alignment.launch (no top-level ``configs`` in site-packages)."""
    arguments = _setup_arguments(monkeypatch)
    packages, folders = arguments["packages"], arguments["package_dir"]
    assert "alignment" in packages and all(p == "alignment" or p.startswith("alignment.") for p in packages), packages
    assert folders == {"alignment.configs": "configs", "alignment.launch": "launch"}
    for package in packages:
        folder = folders.get(package, package.replace(".", "/"))
        assert (ROOT / folder / "__init__.py").is_file(), package
    on_disk = {p.parent.relative_to(ROOT).as_posix().replace("/", ".") for p in (ROOT / "alignment").rglob("__init__.py")}
    assert set(packages) == on_disk | set(folders)


def test_setup_declares_only_what_the_code_imports(monkeypatch):
    """Every install requirement is imported by the library, configs/, launch/ or benchmarks/."""
    requirements = _setup_arguments(monkeypatch)["install_requires"]
    imported = set()
    for folder in ("alignment", "configs", "launch", "benchmarks"):
        for path in (ROOT / folder).rglob("*.py"):
            for node in ast.walk(ast.parse(path.read_text())):
                if isinstance(node, ast.Import):
                    imported |= {a.name.split(".")[0] for a in node.names}
                elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
                    imported.add(node.module.split(".")[0])
    distributions = importlib.metadata.packages_distributions()
    imported_distributions = {d.lower() for module in imported for d in distributions.get(module, ())}
    unused = [r for r in requirements if re.split(r"[<>=!~ \[]", r)[0].lower() not in imported_distributions]
    assert not unused, f"declared but never imported: {unused}"


def _runtime_imports(path: Path, package_root: Path) -> set[str]:
    """The ``alignment`` modules a module imports when it is imported: module-level ``import``
    and ``from`` statements, not those under ``if TYPE_CHECKING:`` or inside functions."""
    tree = ast.parse(path.read_text())
    names = set()
    for node in tree.body:
        if isinstance(node, ast.Import):
            names |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            # "from alignment.rl import kl" imports the submodule alignment.rl.kl when there is one.
            for alias in node.names:
                submodule = f"{node.module}.{alias.name}"
                is_module = (package_root.parent / (submodule.replace(".", "/") + ".py")).is_file()
                names.add(submodule if is_module else node.module)
    return {n for n in names if n == "alignment" or n.startswith("alignment.")}


def test_no_import_cycle_among_the_library_modules():
    """Package ``__init__`` files only gather names, so they are left out: a cycle among the
    modules themselves is an order-dependent import that breaks the first time it runs first."""
    root = Path(__file__).resolve().parents[1] / "alignment"
    modules = {".".join(p.relative_to(root.parent).with_suffix("").parts): p for p in root.rglob("*.py") if p.name != "__init__.py"}
    graph = {name: _runtime_imports(path, root) & set(modules) for name, path in modules.items()}
    state, cycles = {}, []

    def visit(name, trail):
        state[name] = "open"
        for target in sorted(graph[name]):
            if state.get(target) == "open":
                cycles.append(" -> ".join(trail[trail.index(target):] + [target]) if target in trail else f"{name} -> {target}")
            elif target not in state:
                visit(target, trail + [target])
        state[name] = "done"

    for name in sorted(graph):
        if name not in state:
            visit(name, [name])
    assert not cycles, cycles


def test_no_module_of_the_rl_package_grows_past_400_lines():
    root = Path(__file__).resolve().parents[1] / "alignment" / "rl"
    long = {p.name: n for p in root.glob("*.py") if (n := len(p.read_text().splitlines())) > 400}
    assert not long, f"split these by concern: {long}"
