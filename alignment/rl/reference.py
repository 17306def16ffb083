"""The reference-reward stage: K base-policy rewards per prompt and property, sampled once.

The reference reward of prompt x and property i is an estimate from K responses of the base
policy pi_0 (Wang et al., "Transforming and Combining Rewards for Aligning Large Language
Models", arXiv 2402.00742)::

    r_ref,i(x) = estimator( r_i(x, y_1), ..., r_i(x, y_K) ),   y_k ~ pi_0(.|x)

``compute_base_rewards`` samples and scores the K responses and stores the rewards
``[num_prompts, K]`` per property; ``BaseRewards.references(method, **params)`` then applies any
estimator of ``alignment.rewards`` (``empirical``, ``gaussian``, ``fixed_response``,
``constant``) to the stored rewards, so a quantile or estimator sweep never resamples.
``fixed_response_references`` scores given fixed responses (e.g. refusal phrasings) instead.

On-disk cache (root: the ``cache_dir`` argument, else ``$ALIGNMENT_CACHE/reference``, else no
cache), two entries so that a new reward model rescores without resampling:

* ``samples-<key>.npz`` (texts and EOS flags), key = sha256 over the prompts' chat messages and
  token ids (so the tokenizer's template counts), the policy's fingerprint, the tokenizer's EOS
  and pad ids, every ``ReferenceConfig`` field (K, chunk, seed) and the ``RolloutConfig`` (lengths,
  sampling parameters);
* ``rewards-<key>.npz`` (rewards ``[P, N, K]``), key = sha256 over the samples key and each
  reward function's fingerprint and properties.

Fingerprints (``fingerprint``): a model is the sha256 of its parameter arrays' bytes (with their
paths, dtypes and shapes) and of its submodules' ``config``; a reward function with an
``nnx.Module`` ``model`` (``ModelReward``, ``GPMReward``) is its class, properties and model
fingerprint, its tokenizer (vocabulary and chat template), its ``max_length`` and a GPM's fixed
opponents (``GPMReward.against``); any other
reward function (``FunctionReward``) is its python function's qualified name, which does not
see edits to the function's code. A ``fingerprint`` string attribute on a
reward function overrides all this (lambdas, local functions, partials and callable objects
need one).

Writes go to a temporary file in the cache directory, then ``os.replace`` onto the entry's
name: an entry is either whole or absent. An entry that cannot be read or does not match the
request (a truncated file, wrong shapes) is a miss, recomputed and rewritten, with a warning.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
import os
import warnings
import zipfile
from collections.abc import Mapping, Sequence
from pathlib import Path

import jax
import numpy as np
from flax import nnx
from jax.sharding import Mesh

from alignment import files, nested, rewards
from alignment.models.tokenizer import Tokenizer
from alignment.parallel import to_host
from alignment.rl.rollout import RolloutConfig, sample_groups
from alignment.rl.scoring import Chat, RewardFunction, score_all
from alignment.rl.utility import Utility
from alignment.sampling import Sampler, SamplerConfig

CACHE_ENV = "ALIGNMENT_CACHE"
_FORMAT = 1  # bump when the entries' layout changes


@dataclasses.dataclass(frozen=True)
class ReferenceConfig:
    """How many base responses per prompt are sampled, in what chunks. Their lengths and sampling
    distribution are the learner's (a ``RolloutConfig``, passed beside this config): r_ref
    estimates pi_0's rewards under the distribution the learner samples from.

    Attributes:
      num_samples: K, responses per prompt.
      batch_prompts: prompts per sampler call (``batch_prompts * K`` rows; also the scoring chunk).
      seed: chunk c of the prompts is sampled with ``fold_in(jax.random.key(seed), c)``.
    """

    num_samples: int = 16
    batch_prompts: int = 8
    seed: int = 0

    def __post_init__(self):
        nested.check_fields(self, positive=("num_samples", "batch_prompts"))


@dataclasses.dataclass(frozen=True)
class ScoredSamples:
    """K responses per prompt and their rewards: ``texts``, ``ended`` (emitted EOS) and each
    property's ``rewards`` as ``[num_prompts, K]`` (float32 rewards, in reward-function order)."""

    texts: np.ndarray
    ended: np.ndarray
    rewards: dict[str, np.ndarray]

    @property
    def num_prompts(self) -> int:
        return self.texts.shape[0]

    @property
    def num_samples(self) -> int:
        return self.texts.shape[1]

    @property
    def properties(self) -> tuple[str, ...]:
        return tuple(self.rewards)


@dataclasses.dataclass(frozen=True)
class BaseRewards(ScoredSamples):
    """The reference stage's K base-policy samples and rewards, and where they came from.

    ``samples_from_cache`` / ``from_cache``: the samples / the rewards were read from the cache
    (no sampling / no scoring ran); ``samples_path`` / ``rewards_path``: the cache entries
    (``None`` without a cache).
    """

    samples_from_cache: bool = False
    from_cache: bool = False
    samples_path: Path | None = None
    rewards_path: Path | None = None

    def references(self, method: str = "empirical", **params) -> dict[str, np.ndarray]:
        """``{property: r_ref [num_prompts]}`` by ``alignment.rewards.reference_rewards(r, method, **params)``
        over the stored ``[num_prompts, K]`` rewards, e.g. ``references("empirical", quantile=0.85)``."""
        return {name: np.asarray(rewards.reference_rewards(_check_finite(name, r), method, **params))
                for name, r in self.rewards.items()}


def compute_base_rewards(
    policy: nnx.Module,
    tokenizer: Tokenizer,
    chats: Sequence[Chat],
    reward_fns: Sequence[RewardFunction],
    config: ReferenceConfig = ReferenceConfig(),
    cache_dir: str | Path | None = None,
    *,
    rollout: RolloutConfig,
    mesh: Mesh | None = None,
) -> BaseRewards:
    """K base-policy responses to each chat, sampled as ``rollout`` says (the learner's lengths
    and distribution), scored by every reward function (group size K).

    Reads the samples and rewards from the cache when present (module docstring), else samples
    and/or scores and stores them. ``mesh``: the mesh the policy is sharded on, if any.
    """
    root = cache_root(cache_dir)
    prompt_ids = rollout.encode(tokenizer, chats)
    samples_key = _digest({
        "format": _FORMAT, "chats": [[dict(m) for m in chat] for chat in chats], "prompt_ids": prompt_ids,
        "policy": fingerprint(policy), "eos_id": tokenizer.eos_id, "pad_id": tokenizer.pad_id,
        "config": dataclasses.asdict(config), "rollout": dataclasses.asdict(rollout),
    })
    properties = [name for fn in reward_fns for name in fn.properties]
    rewards_key = _digest({"samples": samples_key, "reward_fns": [[fingerprint(fn), list(fn.properties)] for fn in reward_fns]})
    samples_path = None if root is None else root / f"samples-{samples_key}.npz"
    rewards_path = None if root is None else root / f"rewards-{rewards_key}.npz"
    shape = (len(chats), config.num_samples)

    stored = _read_entry(samples_path, {"texts": (shape, "U"), "ended": (shape, "b")})
    samples_from_cache = stored is not None
    if samples_from_cache:
        texts, ended = stored["texts"], stored["ended"]
    else:
        texts, ended = _sample(policy, tokenizer, prompt_ids, config, rollout, jax.random.key(config.seed), mesh)
        _write_entry(samples_path, texts=texts, ended=ended)

    stored = _read_entry(rewards_path, {"properties": ((len(properties),), "U"), "rewards": ((len(properties), *shape), "f")})
    from_cache = stored is not None and stored["properties"].tolist() == properties
    if from_cache:
        scores = dict(zip(properties, stored["rewards"]))
    else:
        scores = _score(chats, texts, reward_fns, config.batch_prompts)
        _write_entry(rewards_path, properties=np.array(list(scores)), rewards=np.stack(list(scores.values())))
    return BaseRewards(texts, ended, scores, samples_from_cache=samples_from_cache, from_cache=from_cache,
                       samples_path=samples_path, rewards_path=rewards_path)


def sample_and_score(
    policy: nnx.Module,
    tokenizer: Tokenizer,
    chats: Sequence[Chat],
    reward_fns: Sequence[RewardFunction],
    config: ReferenceConfig,
    key: jax.Array,
    *,
    rollout: RolloutConfig,
    mesh: Mesh | None = None,
) -> ScoredSamples:
    """``config.num_samples`` responses to each chat sampled as ``rollout`` says with ``key``
    (``config.seed`` unused) and scored by every reward function; no cache."""
    texts, ended = _sample(policy, tokenizer, rollout.encode(tokenizer, chats), config, rollout, key, mesh)
    return ScoredSamples(texts, ended, _score(chats, texts, reward_fns, config.batch_prompts))


def reference_matrix(references: Mapping[str, np.ndarray] | None, properties: Sequence[str], num_prompts: int,
                     utility: Utility) -> np.ndarray:
    """r_ref ``{property: [num_prompts]}`` as ``[num_prompts, P]`` float32 in ``properties`` order
    (NaN where none was given, which only a ``utility`` that reads no r_ref accepts); a
    ``ValueError`` names a missing property, a wrong count or a non-finite value."""
    if references is None:
        if utility.needs_references:
            raise ValueError(f"the transform {utility.transform!r} needs references {{property: [num_prompts]}}")
        return np.full((num_prompts, len(properties)), np.nan, np.float32)
    if sorted(references) != sorted(properties):
        raise ValueError(f"references name {sorted(references)}; the reward functions score {sorted(properties)}")
    out = np.stack([np.asarray(references[p], np.float32).reshape(-1) for p in properties], axis=1)
    if out.shape[0] != num_prompts:
        raise ValueError(f"references have {out.shape[0]} entries per property; there are {num_prompts} prompts")
    bad = np.argwhere(~np.isfinite(out))
    if len(bad):
        prompt, prop = bad[0]
        raise ValueError(f"reference reward of property {properties[prop]!r} for prompt {prompt} is {out[prompt, prop]}")
    return out


def fixed_response_references(
    chats: Sequence[Chat],
    responses: Sequence[str] | Sequence[Sequence[str]],
    reward_fns: Sequence[RewardFunction],
    *,
    batch_prompts: int = 64,
) -> dict[str, np.ndarray]:
    """``{property: r_ref [num_prompts]}``, the mean reward of M fixed responses (e.g. refusal
    phrasings), ``r_ref,i(x) = 1/M sum_m r_i(x, y_m)`` (``alignment.rewards.fixed_response``).

    ``responses``: M strings used for every prompt, or one list of M strings per prompt.
    """
    if all(isinstance(r, str) for r in responses):
        responses = [list(responses)] * len(chats)
    counts = {len(r) for r in responses}
    if len(responses) != len(chats) or len(counts) != 1 or 0 in counts:
        raise ValueError(
            f"responses must be M >= 1 strings, or one list of M >= 1 strings per prompt; got {len(responses)} "
            f"lists of lengths {sorted(counts)} for {len(chats)} prompts"
        )
    scores = _score(chats, np.array([list(r) for r in responses]), reward_fns, batch_prompts)
    return {name: np.asarray(rewards.fixed_response(_check_finite(name, r))) for name, r in scores.items()}


def cache_root(cache_dir: str | Path | None = None) -> Path | None:
    """``cache_dir``, else ``$ALIGNMENT_CACHE/reference``, else ``None`` (no caching)."""
    if cache_dir is not None:
        return Path(cache_dir)
    if os.environ.get(CACHE_ENV):
        return Path(os.environ[CACHE_ENV]) / "reference"
    return None


def fingerprint(obj) -> str:
    """A model's or reward function's cache fingerprint (module docstring)."""
    explicit = getattr(obj, "fingerprint", None)
    if isinstance(explicit, str):
        return explicit
    if isinstance(obj, nnx.Module):
        return _module_fingerprint(obj)
    model = getattr(obj, "model", None)
    if isinstance(model, nnx.Module):
        return f"{type(obj).__qualname__}:{_module_fingerprint(model)}:{_reader_fingerprint(obj)}"
    fn = getattr(obj, "fn", obj)
    qualname = getattr(fn, "__qualname__", None)
    if not isinstance(qualname, str) or "<" in qualname:  # a partial, a callable object, <lambda>, <locals>
        raise ValueError(
            f"cannot fingerprint the reward function {fn!r} by a stable qualified name; set a `fingerprint` string "
            f"attribute on the {type(obj).__qualname__} (it names the function's version in the reference cache)"
        )
    return f"{fn.__module__}.{qualname}"


def _reader_fingerprint(reward_fn) -> str:
    """How a model reward function reads a response: its tokenizer (vocabulary, merges, chat
    template), its ``max_length`` and, for a GPM with fixed opponents, their digest."""
    tokenizer = getattr(reward_fn, "tokenizer", None)
    backend = getattr(tokenizer, "tokenizer", None)
    payload = {
        "max_length": getattr(reward_fn, "max_length", None),
        "tokenizer": backend.to_str() if hasattr(backend, "to_str") else None,
        "chat_template": getattr(tokenizer, "chat_template", None),
        "opponents": getattr(reward_fn, "opponents_digest", None),
    }
    return hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()[:16]


def _module_fingerprint(module: nnx.Module) -> str:
    digest = hashlib.sha256(type(module).__qualname__.encode())
    for path, sub in nnx.iter_modules(module):
        config = getattr(sub, "config", None)
        if dataclasses.is_dataclass(config):
            digest.update(repr((path, config)).encode())
    for path, variable in nnx.to_flat_state(nnx.state(module, nnx.Param)):
        array = np.asarray(to_host(variable.get_value()))
        digest.update(repr((path, array.dtype.str, array.shape)).encode())
        digest.update(np.ascontiguousarray(array).tobytes())
    return digest.hexdigest()


def _digest(payload: Mapping) -> str:
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:32]


@functools.cache
def _sampler(config: SamplerConfig, mesh: Mesh | None) -> Sampler:
    """One sampler (one compiled program) per configuration and mesh."""
    return Sampler(config, mesh)


def _sample(policy, tokenizer, prompt_ids, config: ReferenceConfig, rollout: RolloutConfig, key, mesh) -> tuple[np.ndarray, np.ndarray]:
    """Texts and EOS flags ``[num_prompts, K]``; chunk c of ``batch_prompts`` prompts uses ``fold_in(key, c)``."""
    sampling = rollout.sampler_config((tokenizer.eos_id,), tokenizer.pad_id, (config.batch_prompts * config.num_samples,))
    sampler = _sampler(sampling, mesh)
    texts, ended = [], []
    for c, start in enumerate(range(0, len(prompt_ids), config.batch_prompts)):
        samples = sample_groups(sampler, policy, tokenizer, prompt_ids[start : start + config.batch_prompts],
                                config.num_samples, jax.random.fold_in(key, c))
        texts += samples.texts
        ended.append(samples.ended)
    shape = (len(prompt_ids), config.num_samples)
    return np.array(texts, dtype=str).reshape(shape), np.concatenate(ended).reshape(shape)


def _score(chats, texts: np.ndarray, reward_fns, batch_prompts: int) -> dict[str, np.ndarray]:
    """``{property: float32 [N, K]}`` for texts ``[N, K]``, scored ``batch_prompts`` prompts at a time."""
    if not reward_fns:
        raise ValueError("need at least one reward function to score the responses")
    num_prompts, k = texts.shape
    chunks = []
    for start in range(0, num_prompts, batch_prompts):
        rows = range(start, min(start + batch_prompts, num_prompts))
        chunk = score_all(reward_fns, [chats[i] for i in rows for _ in range(k)], texts[rows.start : rows.stop].reshape(-1).tolist(), k)
        chunks.append({name: to_host(values) for name, values in chunk.items()})  # keeps the order
    return {name: np.concatenate([c[name] for c in chunks]).astype(np.float32).reshape(num_prompts, k) for name in chunks[0]}


def _check_finite(name: str, values: np.ndarray) -> np.ndarray:
    bad = np.flatnonzero(~np.isfinite(values).all(axis=-1))
    if bad.size:
        raise ValueError(
            f"rewards of property {name!r} are not finite for {bad.size} prompts, e.g. prompt index {bad[0]}: "
            f"{values[bad[0]].tolist()} (prompt indices {bad[:10].tolist()}); check the reward model"
        )
    return values


def _read_entry(path: Path | None, expected: Mapping[str, tuple[tuple[int, ...], str]]) -> dict[str, np.ndarray] | None:
    """The arrays of a cache entry, or ``None`` when it is absent, unreadable or of other shapes/kinds."""
    if path is None or not path.is_file():
        return None
    try:
        with np.load(path, allow_pickle=False) as stored:
            arrays = {name: stored[name] for name in expected}
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile) as error:
        warnings.warn(f"ignoring the unreadable reference cache entry {path} ({error!r}); recomputing it")
        return None
    if all(arrays[n].shape == shape and arrays[n].dtype.kind == kind for n, (shape, kind) in expected.items()):
        return arrays
    warnings.warn(f"ignoring the reference cache entry {path}: its arrays do not match the request; recomputing it")
    return None


def _write_entry(path: Path | None, **arrays: np.ndarray) -> None:
    """Writes ``arrays`` to ``path`` atomically (``alignment.files.write_npz``)."""
    if path is not None:
        files.write_npz(path, compressed=False, **arrays)