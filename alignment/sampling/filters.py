"""Sampling distributions from logits: temperature, top-k, top-p (nucleus) and greedy.

Every function is pure and jit-able over any leading batch shape ``[..., V]``. A filter returns
logits of the same shape with ``-inf`` on the tokens it removes, so the *sampling distribution*
is always ``softmax(filter_logits(logits, params))``. The steps compose in the usual order:

1. temperature ``T > 0``: ``z = logits / T``;
2. top-k: keep the ``k`` largest entries of ``z`` (exactly ``k``; ties go to the lower token id);
3. top-p: on ``q = softmax(z)`` of the survivors sorted by decreasing ``q``, keep token ``i`` iff
   the mass strictly before it, ``sum_{j < i} q_j``, is ``< p``. That is the smallest prefix whose
   mass is ``>= p`` (the most likely token always survives).

Greedy decoding (``temperature == 0`` or ``greedy=True``) is the point mass on ``argmax logits``:
its filtered logits are ``0`` at the argmax and ``-inf`` elsewhere, so its log-probability is 0.

Why our own code: jax offers the primitives ``jax.lax.top_k`` and ``jax.random.categorical``;
optax has nothing for sampling, and rlax (not a dependency) has softmax-with-temperature and
greedy policies but no top-k or top-p. None returns the log-probability under the filtered
distribution, which an RL learner needs. We build on the two jax primitives and keep the
survivors in "candidate space" (sorted values plus token ids), so a step with top-k samples
among ``k`` entries instead of the whole vocabulary.

Draws are ``jax.random.categorical``'s, token for token (the Gumbel-max trick with the same
noise, ``argmax(logits + gumbel(key))``), but the argmax is taken as a max followed by the least
index attaining it (``first_argmax``): on XLA:CPU that is two plain reductions, where
``jnp.argmax``'s paired (value, index) reduction took several times as long over a 49k
vocabulary (``benchmarks/sampling_smollm2.py``).
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp


@dataclasses.dataclass(frozen=True)
class SamplingParams:
    """How to turn logits into a sampling distribution (hashable: a static jit argument).

    Attributes:
      temperature: ``T >= 0``; ``0`` means greedy.
      top_k: keep the ``k >= 1`` most likely tokens, or ``None`` for no top-k filter.
      top_p: nucleus mass in ``(0, 1]``; ``1.0`` disables the filter.
      greedy: force greedy decoding whatever the temperature.
    """

    temperature: float = 1.0
    top_k: int | None = None
    top_p: float = 1.0
    greedy: bool = False

    def __post_init__(self):
        if not self.temperature >= 0.0:
            raise ValueError(f"temperature must be >= 0 (0 means greedy); got temperature={self.temperature}")
        if self.top_k is not None and (isinstance(self.top_k, bool) or not isinstance(self.top_k, int) or self.top_k < 1):
            raise ValueError(f"top_k must be a positive int or None; got top_k={self.top_k!r}")
        _check_top_p(self.top_p)

    @property
    def is_greedy(self) -> bool:
        return self.greedy or self.temperature == 0.0


def scale_by_temperature(logits: jax.Array, temperature: float) -> jax.Array:
    """``logits / T`` for ``T > 0`` (use ``greedy_logits`` for ``T = 0``)."""
    if not temperature > 0.0:
        raise ValueError(f"temperature must be > 0 to scale logits; got temperature={temperature}")
    return logits / jnp.asarray(temperature, logits.dtype)


def greedy_logits(logits: jax.Array) -> jax.Array:
    """The point mass on ``argmax logits`` as logits: ``0`` at the argmax, ``-inf`` elsewhere."""
    top = first_argmax(logits)
    return jnp.where(jnp.arange(logits.shape[-1]) == top[..., None], 0.0, -jnp.inf).astype(logits.dtype)


def top_k_logits(logits: jax.Array, k: int) -> jax.Array:
    """Keeps exactly the ``k`` largest logits (ties to the lower token id); ``-inf`` elsewhere."""
    return _scatter(logits, *_top_k_candidates(logits, k))


def top_p_logits(logits: jax.Array, p: float) -> jax.Array:
    """Keeps the smallest most-likely set of tokens with mass ``>= p`` under ``softmax(logits)``."""
    _check_top_p(p)
    values, ids = _top_k_candidates(logits, logits.shape[-1])
    return _scatter(logits, _nucleus(values, p), ids)


def filter_logits(logits: jax.Array, params: SamplingParams) -> jax.Array:
    """Logits of the sampling distribution: temperature, then top-k, then top-p (see module doc)."""
    if params.is_greedy:
        return greedy_logits(logits)
    candidates = _candidates(logits, params)
    if candidates is None:
        return scale_by_temperature(logits, params.temperature)
    return _scatter(logits, *candidates)


def token_logprobs(logits: jax.Array, tokens: jax.Array, params: SamplingParams) -> tuple[jax.Array, jax.Array]:
    """Log-probabilities of given ``tokens`` ``[...]`` under ``logits`` ``[..., V]``.

    Returns ``(sampling_logprobs, model_logprobs)``: ``log softmax(filter_logits(logits))[token]``
    (``-inf`` for a token the filters remove, ``0`` for the greedy choice) and
    ``log softmax(logits)[token]``, the unmodified model at temperature 1.
    """
    sampling = _take(jax.nn.log_softmax(filter_logits(logits, params), axis=-1), tokens)
    return sampling, _take(jax.nn.log_softmax(logits, axis=-1), tokens)


def first_argmax(x: jax.Array) -> jax.Array:
    """``jnp.argmax(x, axis=-1)`` for rows without NaN: the least index of each row's maximum."""
    top = jnp.max(x, axis=-1, keepdims=True)
    index = jax.lax.broadcasted_iota(jnp.int32, x.shape, x.ndim - 1)
    return jnp.min(jnp.where(x == top, index, x.shape[-1] - 1), axis=-1)


def categorical(key: jax.Array, logits: jax.Array) -> jax.Array:
    """``jax.random.categorical(key, logits, axis=-1)``, the same token for the same key: the
    index of ``max(logits + gumbel(key))`` (module docstring)."""
    return first_argmax(logits + jax.random.gumbel(key, logits.shape, logits.dtype))


def sample_logits(key: jax.Array, logits: jax.Array, params: SamplingParams) -> tuple[jax.Array, jax.Array, jax.Array]:
    """Draws one token per row of ``logits`` ``[..., V]`` from the sampling distribution.

    Returns ``(tokens, sampling_logprobs, model_logprobs)``, each ``[...]``, with the two
    log-probabilities as in ``token_logprobs``. Deterministic for a given ``key``.
    """
    model_logprobs = jax.nn.log_softmax(logits, axis=-1)
    if params.is_greedy:
        tokens = first_argmax(logits).astype(jnp.int32)
        return tokens, jnp.zeros(tokens.shape, logits.dtype), _take(model_logprobs, tokens)
    candidates = _candidates(logits, params)
    if candidates is None:
        scaled = scale_by_temperature(logits, params.temperature)
        tokens = categorical(key, scaled).astype(jnp.int32)
        sampling = _take(jax.nn.log_softmax(scaled, axis=-1), tokens)
    else:
        values, ids = candidates
        choice = categorical(key, values)
        tokens = _take(ids, choice).astype(jnp.int32)
        sampling = _take(jax.nn.log_softmax(values, axis=-1), choice)
    return tokens, sampling, _take(model_logprobs, tokens)


def _candidates(logits: jax.Array, params: SamplingParams) -> tuple[jax.Array, jax.Array] | None:
    """Surviving scaled logits sorted in decreasing order with their token ids, ``[..., K]``.

    ``K`` is ``top_k`` (or ``V`` when only top-p is on); top-p drops are ``-inf``. ``None`` when
    neither filter is on (then every token survives and no sort is needed).
    """
    if params.top_k is None and params.top_p == 1.0:
        return None
    scaled = scale_by_temperature(logits, params.temperature)
    values, ids = _top_k_candidates(scaled, params.top_k or logits.shape[-1])
    if params.top_p < 1.0:
        values = _nucleus(values, params.top_p)
    return values, ids


def _top_k_candidates(logits: jax.Array, k: int) -> tuple[jax.Array, jax.Array]:
    vocab = logits.shape[-1]
    if isinstance(k, bool) or not isinstance(k, int) or not 1 <= k <= vocab:
        raise ValueError(f"top_k must be an int in [1, vocabulary size {vocab}]; got top_k={k!r}")
    return jax.lax.top_k(logits, k)


def _nucleus(sorted_logits: jax.Array, p: float) -> jax.Array:
    """Top-p on logits sorted in decreasing order: ``-inf`` where the mass before a token is ``>= p``."""
    probs = jax.nn.softmax(sorted_logits, axis=-1)
    mass_before = jnp.cumsum(probs, axis=-1) - probs  # exactly 0 for the first token, < p
    return jnp.where(mass_before < p, sorted_logits, -jnp.inf)


def _scatter(logits: jax.Array, values: jax.Array, ids: jax.Array) -> jax.Array:
    """Full-vocabulary logits: ``values`` at token ``ids``, ``-inf`` elsewhere."""
    out = jnp.full(logits.shape, -jnp.inf, values.dtype)
    return jnp.put_along_axis(out, ids, values, axis=-1, inplace=False)


def _take(array: jax.Array, index: jax.Array) -> jax.Array:
    return jnp.take_along_axis(array, index[..., None], axis=-1)[..., 0]


def _check_top_p(p: float) -> None:
    if not 0.0 < p <= 1.0:
        raise ValueError(f"top_p must lie in (0, 1]; got top_p={p}")
