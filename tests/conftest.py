"""Shared test setup and fixtures.

* Eight simulated CPU devices for the sharding tests.
* ``shared_data``: the directory of real preference data. It lives beside the project (never
  inside it), at ``$ALIGNMENT_SHARED_DATA`` or else ``../shared/data``. Without it the tests that
  need it skip, except when ``CI=true``: CI always has the data, so there a missing directory
  fails those tests instead of silently skipping them.
* ``box``: the default gold-reward sandbox, built once per run into a temporary cache that the
  pytest-xdist workers share (the first to need it builds it, under a lock; the others wait).
* ``byte_tokenizer``: a tiny byte-level tokenizer with a ChatML template (``ByteChatTokenizer``),
  a stand-in for ``alignment.models.tokenizer.Tokenizer`` in the data tests.
* A persistent JAX compilation cache shared by the session, its xdist workers and the
  subprocesses they start. A size cap turns on JAX's file lock around every read and write of it,
  so that no process reads an entry another is still writing.
* The repository root is put on ``sys.path`` (the tests import ``benchmarks`` and ``tests`` helpers
  from the checkout).
"""

import json
import os
import re
import sys
import tempfile
from pathlib import Path

import jax
import pytest

jax.config.update("jax_num_cpu_devices", 8)
# One persistent compilation cache for the session and the subprocesses it starts (the launcher,
# the notebook kernel, multi-process jobs): programs that several tests compile are compiled once.
os.environ.setdefault("JAX_COMPILATION_CACHE_DIR", tempfile.mkdtemp(prefix="alignment-tests-jax-cache-"))
os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "0.5")
os.environ.setdefault("JAX_COMPILATION_CACHE_MAX_SIZE", str(8 << 30))
jax.config.update("jax_compilation_cache_dir", os.environ["JAX_COMPILATION_CACHE_DIR"])
jax.config.update("jax_persistent_cache_min_compile_time_secs", float(os.environ["JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS"]))
jax.config.update("jax_compilation_cache_max_size", int(os.environ["JAX_COMPILATION_CACHE_MAX_SIZE"]))

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

SHARED_DATA = Path(os.environ.get("ALIGNMENT_SHARED_DATA", ROOT.parent / "shared" / "data"))


# The files that take minutes (fixtures that train several learners or a reward model; from
# --durations), scheduled first so that the two xdist workers finish together instead of one
# idling while the other runs the last long file. The first two do not both need the sandbox,
# so neither waits on the other's build of it.
SLOW_FIRST = ("test_rl_sandbox_successors.py", "test_rl_learner.py", "test_experiment.py", "test_rl_sandbox.py",
              "test_sandbox_reward_model.py", "test_notebook.py", "test_docstring_examples.py", "test_multihost.py")


def pytest_configure(config):
    config.addinivalue_line("markers", "faults: the long fault-injection trials, opt-in (ALIGNMENT_FAULT_TRIALS=N; tests/test_kill_trials.py)")
    if hasattr(config.option, "loadscopereorder"):
        config.option.loadscopereorder = False  # xdist would order the files by their number of tests


def pytest_collection_modifyitems(config, items):
    """The ``SLOW_FIRST`` files first, in that order; the others after them, as collected."""
    rank = {name: i for i, name in enumerate(SLOW_FIRST)}
    items.sort(key=lambda item: rank.get(item.path.name, len(SLOW_FIRST)))


# ALIGNMENT_TEST_PROFILE=<dir>: each process writes <dir>/<worker>.json, every test's seconds
# (setup, call, teardown) and the seconds JAX spent in it by stage of compilation
# (alignment.experiment.compilation.COMPILE_EVENTS); tests/profile_report.py sums them by file.
PROFILE = {}  # nodeid -> {"seconds": s, "trace": s, "lower": s, "compile": s}
_STAGES = {}  # event -> stage, once the listener is registered
_CURRENT = []  # the nodeid of the test running now, if any


def _listen(event: str, duration: float, **_) -> None:
    if event in _STAGES and _CURRENT:
        PROFILE[_CURRENT[0]][_STAGES[event]] += duration


@pytest.hookimpl(wrapper=True)
def pytest_runtest_protocol(item, nextitem):
    if not os.environ.get("ALIGNMENT_TEST_PROFILE"):
        return (yield)
    if not _STAGES:
        from alignment.experiment.compilation import COMPILE_EVENTS

        _STAGES.update({event: stage for stage, event in COMPILE_EVENTS.items()})
        jax.monitoring.register_event_duration_secs_listener(_listen)
    PROFILE[item.nodeid] = dict.fromkeys(("seconds", *_STAGES.values()), 0.0)
    _CURRENT.append(item.nodeid)
    try:
        return (yield)
    finally:
        _CURRENT.clear()


def pytest_runtest_logreport(report):
    if report.nodeid in PROFILE:
        PROFILE[report.nodeid]["seconds"] += report.duration


def pytest_sessionfinish(session):
    if PROFILE:
        path = Path(os.environ["ALIGNMENT_TEST_PROFILE"]) / f"{os.environ.get('PYTEST_XDIST_WORKER', 'main')}.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(PROFILE, indent=1))


@pytest.fixture(scope="session")
def shared_data() -> Path:
    if not SHARED_DATA.is_dir():
        message = f"real preference data not found at {SHARED_DATA} (set $ALIGNMENT_SHARED_DATA)"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"{message}; CI=true, so this is an error, not a skip", pytrace=False)
        pytest.skip(message)
    return SHARED_DATA


class ByteChatTokenizer:
    """Byte-level tokenizer with ChatML special tokens; ``encode`` adds no special tokens.

    Ids: 0 ``<pad>``, 1 ``<|im_start|>``, 2 ``<|im_end|>``, then byte ``b`` is ``b + 3``.
    """

    SPECIALS = ("<pad>", "<|im_start|>", "<|im_end|>")
    pad_id = 0
    vocab_size = len(SPECIALS) + 256
    _split = re.compile("(" + "|".join(map(re.escape, SPECIALS)) + ")")

    def encode(self, text):
        ids = []
        for piece in self._split.split(text):
            if piece in self.SPECIALS:
                ids.append(self.SPECIALS.index(piece))
            else:
                ids.extend(b + len(self.SPECIALS) for b in piece.encode("utf-8"))
        return ids

    def decode(self, ids):
        n = len(self.SPECIALS)
        pieces = [self.SPECIALS[i].encode() if i < n else bytes([i - n]) for i in ids]
        return b"".join(pieces).decode("utf-8", errors="replace")

    def apply_chat_template(self, messages, add_generation_prompt=True):
        text = "".join(f"<|im_start|>{m['role']}\n{m['content']}<|im_end|>\n" for m in messages)
        return text + ("<|im_start|>assistant\n" if add_generation_prompt else "")


@pytest.fixture(scope="session")
def byte_tokenizer() -> ByteChatTokenizer:
    return ByteChatTokenizer()


def shared_tmp_path(tmp_path_factory, name: str) -> Path:
    """A directory of this run that every xdist worker shares (the session's own without xdist)."""
    base = tmp_path_factory.getbasetemp()
    if os.environ.get("PYTEST_XDIST_WORKER"):
        base = base.parent  # <tmp>/pytest-N/popen-gwK: the run's directory holds every worker's
    path = base / name
    path.mkdir(exist_ok=True)
    return path


@pytest.fixture(scope="session")
def box(tmp_path_factory):
    """The default sandbox (``alignment.sandbox.load_sandbox()``), built once per run."""
    from alignment import sandbox

    return sandbox.load_sandbox(cache_dir=shared_tmp_path(tmp_path_factory, "sandbox"))
