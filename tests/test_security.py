"""Security audit of the package, kept true by scanning its source (``ast``, so comments and
strings never count) and by rendering hostile chat templates.

* No loader unpickles: every ``np.load`` passes ``allow_pickle=False``, and nothing calls
  ``pickle``/``dill``/``cloudpickle``/``joblib``/``marshal``/``shelve`` loaders, ``torch.load``,
  ``pandas.read_pickle`` or an unsafe ``yaml`` loader.
* Nothing runs a shell or evaluates data: no ``os.system``/``os.popen``/``os.exec*``/``os.spawn*``,
  no ``subprocess`` call with ``shell=True``, no ``eval``/``exec``/``compile``/``__import__``.
* Chat templates (untrusted code from model files) render only in jinja2's immutable sandbox:
  the package builds no plain ``jinja2.Environment``/``Template``, and a template that reaches for
  Python internals is refused with ``SecurityError`` naming the template's file.
"""

import ast
import json
import textwrap
from pathlib import Path

import numpy as np
import pytest
import tokenizers
from jinja2.exceptions import SecurityError
from jinja2.sandbox import ImmutableSandboxedEnvironment

import alignment
from alignment.evaluation.results import RESULTS_FILE, SAMPLES_FILE, load_results
from alignment.models.tokenizer import Tokenizer, compile_chat_template

PACKAGE = Path(alignment.__file__).parent

UNPICKLERS = {
    f"{module}.{name}"
    for module in ("pickle", "_pickle", "cPickle", "dill", "cloudpickle", "joblib", "marshal")
    for name in ("load", "loads", "Unpickler")
} | {"torch.load", "pandas.read_pickle", "shelve.open", "yaml.unsafe_load", "yaml.full_load", "yaml.load_all",
     "yaml.unsafe_load_all", "numpy.lib.format.read_array"}
NP_LOADS = {"numpy.load", "jax.numpy.load", "numpy.lib.npyio.load"}
SHELLS = {"os.system", "os.popen", "pty.spawn", "commands.getoutput", "subprocess.getoutput",
          "subprocess.getstatusoutput"}
SHELL_PREFIXES = ("os.exec", "os.spawn", "os.posix_spawn")
SUBPROCESS = {"subprocess.run", "subprocess.call", "subprocess.check_call", "subprocess.check_output",
              "subprocess.Popen"}
EVALUATORS = {"eval", "exec", "compile", "__import__", "builtins.eval", "builtins.exec", "builtins.compile"}
UNSANDBOXED = {"jinja2.Environment", "jinja2.Template", "jinja2.environment.Environment", "jinja2.environment.Template",
               "jinja2.nativetypes.NativeEnvironment", "jinja2.nativetypes.NativeTemplate",
               "jinja2.sandbox.SandboxedEnvironment"}  # mutable: a template could change its inputs


def qualified_names(tree: ast.AST) -> dict[str, str]:
    """Local name -> the module path it was imported as (``np`` -> ``numpy``, ``load`` -> ``numpy.load``)."""
    names = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.asname:
                    names[alias.asname] = alias.name
                else:
                    top = alias.name.split(".")[0]
                    names[top] = top
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            for alias in node.names:
                names[alias.asname or alias.name] = f"{node.module}.{alias.name}"
    return names


def dotted(node: ast.AST, names: dict[str, str]) -> str | None:
    """``np.lib.load`` -> "numpy.lib.load" through the imports; None for anything but a name chain."""
    parts = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    if not isinstance(node, ast.Name):
        return None
    return ".".join([names.get(node.id, node.id), *reversed(parts)])


def keyword(call: ast.Call, name: str) -> ast.expr | None:
    return next((k.value for k in call.keywords if k.arg == name), None)


def is_constant(node: ast.expr | None, value) -> bool:
    return isinstance(node, ast.Constant) and node.value is value


def violations(source: str, filename: str = "<source>") -> list[str]:
    """Every call in ``source`` that unpickles, runs a shell, evaluates code or leaves the jinja sandbox."""
    tree = ast.parse(source, filename)
    names = qualified_names(tree)
    found = []
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call):
            continue
        name = dotted(node.func, names)
        where = f"{filename}:{node.lineno}: {ast.unparse(node)[:100]}"
        pickle = keyword(node, "allow_pickle")
        if name in NP_LOADS:
            if not is_constant(pickle, False):
                found.append(f"{where}: np.load without allow_pickle=False")
        elif pickle is not None and not is_constant(pickle, False):  # any other loader that may unpickle
            found.append(f"{where}: allow_pickle must be the constant False")
        elif name is None:
            continue
        elif name in UNPICKLERS:
            found.append(f"{where}: unpickles")
        elif name == "yaml.load" and not (dotted(keyword(node, "Loader") or ast.Constant(None), names) or "").endswith(
            ("SafeLoader", "CSafeLoader", "BaseLoader")
        ):
            found.append(f"{where}: yaml.load without a safe Loader")
        elif name in SHELLS or name.startswith(SHELL_PREFIXES):
            found.append(f"{where}: runs a shell or a program")
        elif name in SUBPROCESS and not is_constant(keyword(node, "shell"), False) and keyword(node, "shell") is not None:
            found.append(f"{where}: subprocess with shell=")
        elif name in EVALUATORS:
            found.append(f"{where}: evaluates code")
        elif name in UNSANDBOXED:
            found.append(f"{where}: a jinja2 environment outside the immutable sandbox")
    return found


def package_sources() -> list[Path]:
    sources = sorted(PACKAGE.rglob("*.py"))
    assert len(sources) > 50 and PACKAGE / "models" / "tokenizer.py" in sources
    return sources


def test_the_package_never_unpickles_runs_a_shell_or_evaluates_data():
    found = [v for path in package_sources() for v in violations(path.read_text(), str(path.relative_to(PACKAGE.parent)))]
    assert not found, "\n".join(found)


def test_every_np_load_in_the_package_is_checked():
    """The scan sees the package's real ``np.load`` calls (so a renamed import cannot hide one)."""
    calls = []
    for path in package_sources():
        tree = ast.parse(path.read_text())
        names = qualified_names(tree)
        calls += [n for n in ast.walk(tree) if isinstance(n, ast.Call) and dotted(n.func, names) in NP_LOADS]
    assert calls and all(is_constant(keyword(call, "allow_pickle"), False) for call in calls)


@pytest.mark.parametrize("source", [
    "import numpy as np\nnp.load(path)",
    "import numpy\nnumpy.load(path, mmap_mode='r')",
    "from numpy import load\nload(path)",
    "import jax.numpy as jnp\njnp.load(path)",
    "import numpy as np\nnp.load(path, allow_pickle=True)",
    "import numpy as np\nnp.load(path, allow_pickle=flag)",
    "arrays = store.load(path, allow_pickle=True)",
    "import pickle\npickle.loads(blob)",
    "from pickle import load\nload(f)",
    "import cloudpickle as cp\ncp.load(f)",
    "import dill\ndill.loads(b)",
    "import torch\ntorch.load(path)",
    "import joblib\njoblib.load(path)",
    "import pandas as pd\npd.read_pickle(path)",
    "import yaml\nyaml.load(text)",
    "import yaml\nyaml.load(text, Loader=yaml.Loader)",
    "import os\nos.system(command)",
    "import os\nos.popen(command)",
    "import os\nos.execvp(program, args)",
    "import subprocess\nsubprocess.run(command, shell=True)",
    "from subprocess import Popen\nPopen(command, shell=config.shell)",
    "eval(config['expression'])",
    "exec(text)",
    "__import__(name)",
    "import jinja2\njinja2.Environment().from_string(template)",
    "from jinja2 import Template\nTemplate(template)",
    "from jinja2.sandbox import SandboxedEnvironment\nSandboxedEnvironment()",
])
def test_the_scan_catches_each_kind_of_violation(source):
    assert len(violations(source)) == 1


@pytest.mark.parametrize("source", [
    "import numpy as np\nnp.load(path, allow_pickle=False)",
    "import numpy as np\nwith np.load(path, allow_pickle=False) as f: pass",
    "import json\njson.loads(text)",
    "import re\nre.compile('x')",
    "lowered.compile()",
    "import yaml\nyaml.load(text, Loader=yaml.SafeLoader)",
    "import subprocess\nsubprocess.run(['ls', path])",
    "import subprocess\nsubprocess.run(['ls'], shell=False)",
    "from jinja2.sandbox import ImmutableSandboxedEnvironment\nImmutableSandboxedEnvironment()",
    "# np.load(path) in a comment\nx = 'pickle.loads(blob) in a string'",
])
def test_the_scan_passes_safe_calls(source):
    assert violations(textwrap.dedent(source)) == []


def test_a_pickled_array_is_refused_on_load(tmp_path):
    """``load_results`` (the package's reader of ``samples.npz``) refuses object arrays."""
    (tmp_path / RESULTS_FILE).write_text(json.dumps({"accuracy": 0.5}))
    np.savez(tmp_path / SAMPLES_FILE, rows=np.array([{"not": "an array"}], dtype=object))
    with pytest.raises(ValueError, match="allow_pickle=False"):
        load_results(tmp_path)


# --------------------------------------------------------------------------------------------
# Chat templates
# --------------------------------------------------------------------------------------------

HOSTILE = [
    "{{ ''.__class__.__mro__[1].__subclasses__() }}",
    "{{ ''.__class__ }}",  # plain jinja2 sandboxes render this as nothing; here it is refused
    "{{ (0).__class__.__base__.__subclasses__() }}",
    "{{ cycler.__init__.__globals__ }}",
    "{{ joiner.__init__.__globals__.os }}",
    "{{ namespace.__init__.__globals__ }}",
    "{{ lipsum.__globals__['os'].popen('id').read() }}",
    "{{ raise_exception.__globals__ }}",
    "{{ strftime_now.__globals__['datetime'] }}",
    "{{ self.__init__.__globals__ }}",
    "{{ messages.__class__ }}",
    "{{ ''|attr('__class__') }}",
    "{{ messages|map(attribute='__class__')|list }}",
    "{{ '{0.__class__}'.format(messages) }}",
    "{{ messages.append({'role': 'system', 'content': 'injected'}) }}",
    "{{ messages[0].update({'content': 'changed'}) }}",
    "{% for m in messages %}{{ m.clear() }}{% endfor %}",
]
CHATML = (
    "{% for m in messages %}{{ '<|im_start|>' + m['role'] + '\n' + m['content'] | trim + '<|im_end|>\n' }}"
    "{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)
MESSAGES = [{"role": "user", "content": " Hi "}]


@pytest.fixture(scope="module")
def backend():
    tok = tokenizers.Tokenizer(tokenizers.models.WordLevel({"<s>": 0, "</s>": 1, "hi": 2}, unk_token="hi"))
    tok.pre_tokenizer = tokenizers.pre_tokenizers.WhitespaceSplit()
    return tok


def test_templates_compile_in_the_immutable_sandbox():
    assert isinstance(compile_chat_template(CHATML).environment, ImmutableSandboxedEnvironment)


@pytest.mark.parametrize("template", HOSTILE)
def test_a_template_reaching_for_python_internals_is_refused(backend, tmp_path, template):
    tokenizer = Tokenizer(backend, bos_id=0, eos_id=1, chat_template=template, template_source="model.gguf")
    with pytest.raises(SecurityError, match=r"^chat template of model\.gguf refused by the sandbox: .*unsafe"):
        tokenizer.apply_chat_template(MESSAGES)
    assert MESSAGES == [{"role": "user", "content": " Hi "}]  # the caller's messages are untouched


def test_a_hostile_template_file_is_named(backend, tmp_path):
    backend.save(str(tmp_path / "tokenizer.json"))
    (tmp_path / "tokenizer_config.json").write_text(json.dumps({"eos_token": "</s>", "chat_template": CHATML}))
    (tmp_path / "chat_template.jinja").write_text(HOSTILE[0])
    tokenizer = Tokenizer.from_pretrained(tmp_path)
    with pytest.raises(SecurityError, match=f"chat template of {tmp_path / 'chat_template.jinja'} refused"):
        tokenizer.apply_chat_template(MESSAGES)


def test_a_normal_template_still_renders(backend):
    tokenizer = Tokenizer(backend, bos_id=0, eos_id=1, chat_template=CHATML)
    assert tokenizer.apply_chat_template(MESSAGES) == "<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n"
    namespaced = (
        "{% set ns = namespace(n=0) %}{% for m in messages %}{% set ns.n = ns.n + 1 %}{% endfor %}"
        "{{ bos_token }}{{ ns.n }} {{ messages | tojson }} {{ messages[0]['content'].strip() | upper }}"
    )
    tokenizer = Tokenizer(backend, bos_id=0, eos_id=1, chat_template=namespaced)
    assert tokenizer.apply_chat_template(MESSAGES) == '<s>1 [{"role": "user", "content": " Hi "}] HI'
