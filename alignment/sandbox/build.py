"""Building the sandbox from a seed, and its on-disk cache.

``load_sandbox(config)`` returns a ``Sandbox``: the tokenizer, the trained base policy, the
prompts and their splits, and the BT-labelled preference records of both properties. Only the
tokenizer and the policy are stored (the text parts regenerate from the seed in about two
seconds). The cache entry is ``<root>/<key>`` where ``root`` is the ``cache_dir`` argument, else
``$ALIGNMENT_SANDBOX_CACHE``, else ``$XDG_CACHE_HOME/alignment/sandbox`` (``~/.cache/...``), and
``key`` hashes the config, the source of every module of the ``alignment`` package and the
versions of the libraries those modules import (``code_digest``), so editing any module or
upgrading e.g. jax starts a fresh entry. An entry holds ``config.json``, ``tokenizer.json``,
``policy/`` (an Orbax parameter checkpoint, ``alignment.models.loaders.checkpoint``) and
``train_log.json``, and is written to a temporary directory first and renamed into place when
complete.

Random streams: every consumer of randomness draws from its own
``numpy.random.default_rng([seed, stream])`` (``STREAMS``), so changing one part (e.g. the
number of pairs) leaves the others' draws unchanged.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import importlib.metadata
import json
import os
import shutil
import tempfile
import tokenize
from pathlib import Path
from typing import Sequence

import filelock
import jax
import numpy as np
from flax import nnx

from alignment.data.records import PreferenceRecord
from alignment.sandbox.bank import SENTENCES
from alignment.sandbox.gold import PROPERTIES
from alignment.sandbox.policy import PolicyConfig, sample_texts, sft_corpus, train_policy
from alignment.sandbox.preferences import label_pairs, split_prompts
from alignment.sandbox.prompts import Prompt, all_prompts
from alignment.sandbox.responses import ResponseGrammar
from alignment.sandbox.tokenizer import build_tokenizer, load_tokenizer
from alignment.data.splits import DEFAULT_SPLITS
from alignment.models import Decoder
from alignment.models.loaders.checkpoint import restore_params, save_params
from alignment.models.tokenizer import Tokenizer

CACHE_ENV = "ALIGNMENT_SANDBOX_CACHE"
STREAMS = {"helpful": 1, "harmless": 2, "sft": 3, "policy": 4, "eval": 5, "pi_0 pairs": 6}
PACKAGE = Path(__file__).resolve().parents[1]


@dataclasses.dataclass(frozen=True)
class SandboxConfig:
    """Everything that determines a sandbox.

    Attributes:
      seed: the root of every random stream.
      beta: BT inverse temperature of the labels, ``P(a > b) = sigmoid(beta * (g(a) - g(b)))``.
      pairs_per_prompt: labelled pairs per prompt and property.
      grammar: the base response distribution.
      policy: the base policy's shape and training.
      splits: ``(name, fraction)`` pairs for ``alignment.data.splits``.
      salt: the split hash's salt.
    """

    seed: int = 0
    beta: float = 3.0
    pairs_per_prompt: int = 2
    grammar: ResponseGrammar = ResponseGrammar()
    policy: PolicyConfig = PolicyConfig()
    splits: tuple[tuple[str, float], ...] = tuple(DEFAULT_SPLITS.items())
    salt: str = ""

    @property
    def source(self) -> str:
        """The ``source`` of the sandbox's preference records."""
        return f"sandbox:seed={self.seed}"

    def rng(self, stream: str) -> np.random.Generator:
        return np.random.default_rng([self.seed, STREAMS[stream]])


def sandbox_tokenizer() -> Tokenizer:
    """The word-level tokenizer of the bank and prompt vocabulary (the same for every config)."""
    return build_tokenizer([*SENTENCES, *(p.text for p in all_prompts())])


def preference_records(config: SandboxConfig) -> dict[str, list[PreferenceRecord]]:
    """BT-labelled pairs over all prompts, by property (``line`` numbers restart per property)."""
    return {
        prop: label_pairs(all_prompts(), prop, config.rng(prop), pairs_per_prompt=config.pairs_per_prompt,
                          beta=config.beta, source=config.source, grammar=config.grammar)
        for prop in PROPERTIES
    }


def code_digest(package: Path = PACKAGE) -> str:
    """SHA-256 of every ``.py`` file under ``package`` and of ``library_versions(package)``."""
    digest = hashlib.sha256()
    for path in sorted(package.rglob("*.py")):
        digest.update(path.relative_to(package).as_posix().encode() + b"\0" + path.read_bytes() + b"\0")
    digest.update(json.dumps(library_versions(package), sort_keys=True).encode())
    return digest.hexdigest()


@functools.cache
def library_versions(package: Path = PACKAGE) -> dict[str, str]:
    """``{distribution: version}`` of every installed distribution that a module under ``package``
    imports (absolute imports read from the source; the package itself and modules of no installed
    distribution are left out)."""
    names = {name.partition(".")[0] for path in package.rglob("*.py") for name in absolute_imports(path)}
    names.discard(package.name)
    distributions = importlib.metadata.packages_distributions()
    return {d: importlib.metadata.version(d) for name in names for d in distributions.get(name, ())}


def absolute_imports(path: Path) -> set[str]:
    """The modules that ``path`` imports absolutely (``import a.b``, ``from a.b import c``), in any
    scope; relative imports are left out.

    Read from ``tokenize``'s tokens rather than ``ast.parse``: CPython 3.11's ``ast.parse`` can
    fail with "AST constructor recursion depth mismatch" while another thread builds an AST
    (python/cpython#106905; it failed a pytest worker here).
    """
    imports = set()
    with path.open("rb") as file:
        tokens = [t for t in tokenize.tokenize(file.readline)
                  if t.type not in (tokenize.NL, tokenize.COMMENT, tokenize.INDENT, tokenize.DEDENT)]
    starts = {tokenize.ENCODING, tokenize.NEWLINE}
    for i, token in enumerate(tokens[1:-1], 1):
        before, after = tokens[i - 1], tokens[i + 1]
        if token.type != tokenize.NAME or not (before.type in starts or before.string in (";", ":")):
            continue  # ``raise E from e`` and ``yield from x`` are not imports
        if token.string == "from" and after.type == tokenize.NAME:  # ``from .x`` goes on with an OP
            imports.add(_dotted_names(tokens, i + 1)[0])
        elif token.string == "import":
            imports.update(_dotted_names(tokens, i + 1))
    return imports


def _dotted_names(tokens: list, i: int) -> list[str]:
    """The comma-separated dotted names from ``tokens[i]`` on, their ``as`` aliases skipped, up to
    the end of the statement or ``import``."""
    names, current, alias = [], "", False
    for token in tokens[i:]:
        if token.type == tokenize.NEWLINE or token.string in (";", "import"):
            break
        if token.string == ",":
            names.append(current)
            current, alias = "", False
        elif token.string == "as":
            alias = True
        elif not alias and token.string not in ("(", ")"):
            current += token.string
    return [*names, current] if current else names


def cache_key(config: SandboxConfig) -> str:
    return _key(_fingerprint(config))


def _fingerprint(config: SandboxConfig) -> dict:
    """What the cache key hashes (and an entry's ``config.json`` records)."""
    return {"config": dataclasses.asdict(config), "code": code_digest()}


def _key(fingerprint: dict) -> str:
    return hashlib.sha256(json.dumps(fingerprint, sort_keys=True).encode()).hexdigest()[:16]


def cache_root(cache_dir: str | Path | None = None) -> Path:
    if cache_dir is not None:
        return Path(cache_dir)
    if os.environ.get(CACHE_ENV):
        return Path(os.environ[CACHE_ENV])
    return Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "alignment" / "sandbox"


@dataclasses.dataclass
class Sandbox:
    """A built sandbox (see ``load_sandbox``).

    Attributes:
      config: what it was built from.
      tokenizer: the word-level tokenizer.
      policy: the base policy pi_0 (a ``Decoder``).
      directory: its cache entry.
      train_log: the SFT loss curve and timings.
    """

    config: SandboxConfig
    tokenizer: Tokenizer
    policy: Decoder
    directory: Path
    train_log: dict

    @property
    def prompts(self) -> tuple[Prompt, ...]:
        return all_prompts()

    @functools.cached_property
    def splits(self) -> dict[str, list[Prompt]]:
        """Prompts by split; a prompt's records are in the same split (``records``)."""
        return split_prompts(self.prompts, dict(self.config.splits), self.config.salt)

    @functools.cached_property
    def preferences(self) -> dict[str, list[PreferenceRecord]]:
        """All preference records by property."""
        return preference_records(self.config)

    def records(self, prop: str, split: str) -> list[PreferenceRecord]:
        """The records of property ``prop`` whose prompt is in ``split``."""
        if split not in self.splits:
            raise KeyError(f"unknown split {split!r}; valid splits: {list(self.splits)}")
        texts = {p.text for p in self.splits[split]}
        return [r for r in self.preferences[prop] if r.context[-1].content in texts]

    def sample(self, prompts: Sequence[Prompt], key: jax.Array, temperature: float = 1.0) -> list[str]:
        """One base-policy response text per prompt."""
        return sample_texts(self.policy, self.tokenizer, prompts, key,
                            max_new_tokens=self.config.policy.max_new_tokens, temperature=temperature)


def load_sandbox(config: SandboxConfig = SandboxConfig(), cache_dir: str | Path | None = None, rebuild: bool = False) -> Sandbox:
    """The sandbox of ``config`` from the cache, building and storing it first on a miss or ``rebuild``.

    Processes sharing a cache build an entry once: one builds, the others wait for it (a file lock
    beside the entry) and then load it."""
    fingerprint = _fingerprint(config)
    directory = cache_root(cache_dir) / _key(fingerprint)
    if rebuild or not (directory / "config.json").is_file():
        directory.parent.mkdir(parents=True, exist_ok=True)
        with filelock.FileLock(directory.parent / f".{directory.name}.lock"):
            if rebuild or not (directory / "config.json").is_file():
                _build(config, directory, fingerprint)
    tokenizer = load_tokenizer(directory / "tokenizer.json")
    decoder_config = config.policy.decoder_config(tokenizer.vocab_size)
    policy = restore_params(nnx.eval_shape(lambda: Decoder(decoder_config, rngs=nnx.Rngs(0))), directory / "policy")
    train_log = json.loads((directory / "train_log.json").read_text())
    return Sandbox(config, tokenizer, policy, directory, train_log)


def _build(config: SandboxConfig, directory: Path, fingerprint: dict) -> None:
    directory.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{directory.name}-", dir=directory.parent))
    try:
        tokenizer = sandbox_tokenizer()
        corpus = sft_corpus(all_prompts(), config.rng("sft"), config.policy.responses_per_prompt, config.grammar)
        policy, log = train_policy(tokenizer, corpus, config.policy, config.seed)
        tokenizer.save(tmp / "tokenizer.json")
        save_params(policy, tmp / "policy")
        (tmp / "train_log.json").write_text(json.dumps(log))
        (tmp / "config.json").write_text(json.dumps(fingerprint, indent=2))
        if directory.exists():
            shutil.rmtree(directory)
        try:
            os.rename(tmp, directory)
        except OSError:
            if not (directory / "config.json").is_file():  # not a concurrent build that finished first
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
