"""Reward functions: one score per (prompt, response) and property, for the learner and the judge.

A reward function maps chats and response texts to ``{property: rewards [B]}``, as
``reward_fn(chats, responses, group_size)``: ``chats[b]`` is the prompt's message list
(``[{"role": "user", "content": ...}]``) and ``responses[b]`` the response text; consecutive
runs of ``group_size`` rows are samples of one prompt (the learner's G). Three kinds:

* ``ModelReward``: a Bradley-Terry ``RewardModel`` (one head per property). Each response is
  rendered with the reward model's chat template as a full assistant turn, exactly as in
  reward-model training (``alignment.data.tokenization.render``), left-padded to one length and
  scored at its last token by one jit-compiled program per batch size.
* ``GPMReward``: a general preference model (Zhang et al., "General Preference Modeling with
  Preference Representations for Aligning Language Models", arXiv 2410.02197) as a reward,
  through its score against opponents, as in their GPO: by default the other samples of the
  same prompt (the current policy), ``r(y_i) = 1/(G-1) sum_{j != i} s(y_i > y_j | x)``; with
  ``against(chats, texts)`` fixed opponents per prompt such as the reference stage's K base
  responses, ``r(y) = 1/K sum_k s(y > y_k | x)``. Each response costs one forward pass.
* ``FunctionReward``: any python ``fn(chat, response) -> {property: float}`` (e.g. the sandbox's
  gold utilities as the judge).

``PropertySubset(fn, properties)`` keeps some of a reward function's properties.

Texts are re-encoded (not scored from the policy's tokens) so that a reward model may use
another tokenizer or template than the policy.

With a mesh that spans several processes, a model's rewards are global arrays sharded over the
batch: read them with ``alignment.parallel.to_host`` (every process must call it).
"""

from __future__ import annotations

import contextlib
import copy
import functools
import hashlib
import json
from collections.abc import Callable, Mapping, Sequence
from typing import Protocol

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx
from jax.sharding import Mesh

from alignment.data.tokenization import ChatTokenizer, render
from alignment.models.heads import GPMModel, RewardModel, gpm_score
from alignment.models.layers import positions_from_mask
from alignment.parallel import DEFAULT_RULES, from_host, logical_sharding, to_host

Chat = Sequence[Mapping[str, str]]


class RewardFunction(Protocol):
    """``fn(chats, responses, group_size) -> {property: [B] float32}`` (module docstring)."""

    properties: tuple[str, ...]

    def __call__(self, chats: Sequence[Chat], responses: Sequence[str], group_size: int) -> dict[str, jax.Array]: ...


class EncodedResponses:
    """Chat-templated prompt + response token ids, left-padded to ``[B, max_length]``.

    A sequence longer than ``max_length`` loses tokens from the start of its prompt (the
    response is kept whole; a response that alone fills ``max_length`` is an error);
    ``truncated`` counts the rows that lost prompt tokens.
    """

    def __init__(self, tokenizer: ChatTokenizer, chats: Sequence[Chat], responses: Sequence[str], max_length: int):
        if len(chats) != len(responses):
            raise ValueError(f"got {len(chats)} chats and {len(responses)} responses; need one chat per response")
        prompt_ids: dict[str, list[int]] = {}
        rows, prompt_lengths, self.truncated = [], [], 0
        for chat, response in zip(chats, responses):
            prompt, (completion,) = render(tokenizer, [dict(m) for m in chat], (response,))
            if prompt not in prompt_ids:
                prompt_ids[prompt] = tokenizer.encode(prompt)
            completion_ids = tokenizer.encode(completion)
            if len(completion_ids) >= max_length:
                raise ValueError(
                    f"a response of {len(completion_ids)} tokens leaves no room for its prompt in the reward "
                    f"model's max_length={max_length}; raise max_length"
                )
            ids = prompt_ids[prompt] + completion_ids
            self.truncated += len(ids) > max_length
            ids = ids[-max_length:]
            rows.append(ids)
            prompt_lengths.append(len(ids) - len(completion_ids))
        self.tokens = np.full((len(rows), max_length), tokenizer.pad_id, np.int32)
        self.mask = np.zeros((len(rows), max_length), bool)
        for b, ids in enumerate(rows):
            self.tokens[b, max_length - len(ids):] = ids
            self.mask[b, max_length - len(ids):] = True
        # Index of each row's last prompt token (where a GPM reads lambda(x)).
        self.prompt_last = np.array([max_length - len(ids) + p - 1 for ids, p in zip(rows, prompt_lengths)], np.int32)


class _ModelScorer:
    """Runs a head model on encoded responses: one compiled program per batch size, on a mesh."""

    def __init__(self, model: nnx.Module, tokenizer: ChatTokenizer, max_length: int, mesh: Mesh | None, rules):
        self.model, self.tokenizer, self.max_length = model, tokenizer, max_length
        self.mesh, self.rules = mesh, tuple(rules)
        self.num_compilations = 0
        self._forward = jax.jit(self._trace_forward, static_argnums=0)

    def _trace_forward(self, graphdef, state, tokens, mask, prompt_last):
        self.num_compilations += 1
        model = nnx.merge(graphdef, state)
        inputs = (tokens, positions_from_mask(mask), mask)
        return model(*inputs, prompt_last) if isinstance(model, GPMModel) else model(*inputs)

    def __call__(self, chats: Sequence[Chat], responses: Sequence[str]):
        encoded = EncodedResponses(self.tokenizer, chats, responses, self.max_length)
        inputs = (encoded.tokens, encoded.mask, encoded.prompt_last)
        if self.mesh is not None:
            names = {1: ("batch",), 2: ("batch", "length")}
            inputs = tuple(from_host(x, logical_sharding(self.mesh, names[x.ndim], self.rules, shape=x.shape)) for x in inputs)
        graphdef, state = nnx.split(self.model)
        with contextlib.nullcontext() if self.mesh is None else jax.set_mesh(self.mesh):
            return self._forward(graphdef, state, *inputs)


class _HeadModelReward:
    """A head model read through its own tokenizer and chat template (see ``EncodedResponses``)."""

    def __init__(self, model: nnx.Module, tokenizer: ChatTokenizer, properties: Sequence[str], max_length: int,
                 mesh: Mesh | None, rules):
        self.properties = tuple(properties)
        self.model, self.tokenizer, self.max_length = model, tokenizer, max_length
        self.mesh, self.rules = mesh, tuple(rules)
        self._scorer = _ModelScorer(model, tokenizer, max_length, mesh, rules)

    @property
    def num_compilations(self) -> int:
        return self._scorer.num_compilations


class ModelReward(_HeadModelReward):
    """A Bradley-Terry ``RewardModel`` whose head p scores ``properties[p]`` (module docstring).

    Args:
      model: the reward model (placed on ``mesh`` already when one is given).
      tokenizer: the reward model's tokenizer, with its chat template.
      properties: one name per head, in head order.
      max_length: the padded length of prompt + response (prompts are cut from the left).
      mesh, rules: shard the batch over the logical "batch" axis.
    """

    def __init__(self, model: RewardModel, tokenizer: ChatTokenizer, properties: Sequence[str], *,
                 max_length: int = 256, mesh: Mesh | None = None, rules=DEFAULT_RULES):
        heads = model.kernel.shape[-1]
        if len(properties) != heads:
            raise ValueError(f"the reward model has {heads} heads; got {len(properties)} property names {list(properties)}")
        super().__init__(model, tokenizer, properties, max_length, mesh, rules)

    def __call__(self, chats: Sequence[Chat], responses: Sequence[str], group_size: int = 1) -> dict[str, jax.Array]:
        rewards = self._scorer(chats, responses)
        return {name: rewards[:, p] for p, name in enumerate(self.properties)}


class GPMReward(_HeadModelReward):
    """A ``GPMModel`` as the reward of one property: the mean preference score of each response
    over its opponents. Opponents are the other samples of its prompt,
    ``r_i = mean_{j != i} s(y_i > y_j | x)``, unless ``against`` fixed them (e.g. base responses)."""

    def __init__(self, model: GPMModel, tokenizer: ChatTokenizer, property_name: str, *,
                 max_length: int = 256, mesh: Mesh | None = None, rules=DEFAULT_RULES):
        super().__init__(model, tokenizer, (property_name,), max_length, mesh, rules)
        self.opponents: dict[str, tuple[Chat, list[str]]] | None = None  # chat_key -> (chat, texts)
        self.opponents_digest: str | None = None  # part of the reference cache's fingerprint
        self._mean_opponent: dict[str, jax.Array] = {}

    def against(self, chats: Sequence[Chat], texts: Sequence[Sequence[str]]) -> GPMReward:
        """This GPM (the same model and compiled programs) scoring each response against the fixed
        opponents ``texts[n]`` of ``chats[n]``, e.g. the reference stage's K base responses::

            r(y) = 1/K sum_k s(y > y_k | x) = s(y > ybar | x),   v(ybar) = 1/K sum_k v(y_k)

        (s is bilinear in the two embeddings), so a prompt's opponents are embedded once, on its
        first call, and a response costs one forward pass as before."""
        if len(chats) != len(texts):
            raise ValueError(f"got {len(chats)} chats and {len(texts)} lists of opponents; need one list per chat")
        opponents = {chat_key(chat): (chat, [str(t) for t in row]) for chat, row in zip(chats, texts)}
        if empty := [key for key, (_, row) in opponents.items() if not row]:
            raise ValueError(f"the prompt {empty[0]} has no opponents")
        fixed = copy.copy(self)
        fixed.opponents, fixed._mean_opponent = opponents, {}
        texts_by_key = {key: row for key, (_, row) in opponents.items()}
        fixed.opponents_digest = hashlib.sha256(json.dumps(texts_by_key, sort_keys=True).encode()).hexdigest()[:32]
        return fixed

    def __call__(self, chats: Sequence[Chat], responses: Sequence[str], group_size: int = 1) -> dict[str, jax.Array]:
        if self.opponents is not None:
            v, weights = self.embed(chats, responses)
            keys = [chat_key(chat) for chat in chats]
            self._embed_opponents(keys, len(responses))
            opponent = jnp.stack([self._mean_opponent[key] for key in keys])
            return {self.properties[0]: gpm_score(v, opponent.astype(v.dtype), weights)}
        if group_size < 2 or len(responses) % group_size:
            raise ValueError(
                f"a GPM scores each response against the other samples of its prompt: need group_size >= 2 dividing "
                f"the {len(responses)} responses, got group_size={group_size}"
            )
        v, weights = self.embed(chats, responses)
        return {self.properties[0]: group_preference_scores(v, weights, group_size)}

    def embed(self, chats: Sequence[Chat], responses: Sequence[str]) -> tuple[jax.Array, jax.Array]:
        """The GPM's ``(v [B, 2k], lambda(x) [B, k])`` of each row: one forward pass per response."""
        return self._scorer(chats, responses)

    def _embed_opponents(self, keys: Sequence[str], rows: int) -> None:
        """``mean_k v(y_k)`` of the fixed opponents of every prompt in ``keys`` not seen before: all
        their responses embedded together, ``rows`` at a time (the caller's batch size, the last
        chunk padded by repetition, so that no new program is compiled)."""
        missing = [key for key in dict.fromkeys(keys) if key not in self._mean_opponent]
        if unknown := [key for key in missing if key not in self.opponents]:
            raise KeyError(f"the GPM reward has no opponents for the prompt {unknown[0][:200]}; `against` was given other prompts")
        flat = [(self.opponents[key][0], text) for key in missing for text in self.opponents[key][1]]
        embedded = []
        for start in range(0, len(flat), rows):
            chunk = flat[start : start + rows]
            padded = chunk + [chunk[-1]] * (rows - len(chunk))
            embedded.append(to_host(self.embed([c for c, _ in padded], [t for _, t in padded])[0])[: len(chunk)])
        offset, vectors = 0, np.concatenate(embedded) if embedded else None
        for key in missing:
            count = len(self.opponents[key][1])
            self._mean_opponent[key] = jnp.asarray(vectors[offset : offset + count].mean(axis=0))
            offset += count


def chat_key(chat: Chat) -> str:
    """A chat's messages as canonical JSON: the key of per-prompt data such as fixed opponents."""
    return json.dumps([dict(m) for m in chat], sort_keys=True)


@functools.partial(jax.jit, static_argnums=2)
def group_preference_matrix(v: jax.Array, weights: jax.Array, group_size: int) -> jax.Array:
    """``[groups, G, G]`` s(y_i > y_j | x) within each group of ``group_size`` consecutive rows
    (one prompt): ``S = A - A^T`` with ``A_ij = sum_l lambda_l(x) v_i[2l] v_j[2l+1]`` and the
    group's lambda(x) read from its first row. ``S_ij = -S_ji`` and ``S_ii = 0`` exactly, however
    the products round (``heads.gpm_score`` computes the same score pair by pair)."""
    v = v.reshape(-1, group_size, v.shape[-1])
    weights = weights.reshape(-1, group_size, weights.shape[-1])[:, 0]
    a = jnp.einsum("gil,gjl,gl->gij", v[..., 0::2], v[..., 1::2], weights)
    return a - jnp.swapaxes(a, 1, 2)


@functools.partial(jax.jit, static_argnums=2)
def group_preference_scores(v: jax.Array, weights: jax.Array, group_size: int) -> jax.Array:
    """``[B]`` mean of s(y_i > y_j | x) over the j != i of i's group (rows ``g*G .. g*G+G-1``)."""
    scores = group_preference_matrix(v, weights, group_size)  # [groups, G, G], zero diagonal
    return (scores.sum(axis=-1) / (group_size - 1)).reshape(-1)


class FunctionReward:
    """``fn(chat, response) -> {property: float}`` for each row, e.g. the sandbox's gold utilities."""

    def __init__(self, fn: Callable[[Chat, str], Mapping[str, float]], properties: Sequence[str]):
        self.fn, self.properties = fn, tuple(properties)

    def __call__(self, chats: Sequence[Chat], responses: Sequence[str], group_size: int = 1) -> dict[str, jax.Array]:
        scores = [self.fn(chat, response) for chat, response in zip(chats, responses)]
        missing = [p for p in self.properties if scores and p not in scores[0]]
        if missing:
            raise ValueError(f"the reward function returned {sorted(scores[0])}; it must score the properties {list(self.properties)}")
        return {p: jnp.asarray([s[p] for s in scores], jnp.float32) for p in self.properties}


class PropertySubset:
    """A reward function restricted to some of its properties (e.g. a single-property run)."""

    def __init__(self, fn: RewardFunction, properties: Sequence[str]):
        self.fn, self.properties = fn, tuple(p for p in fn.properties if p in properties)

    def __call__(self, chats, responses, group_size: int = 1):
        scores = self.fn(chats, responses, group_size)
        return {p: scores[p] for p in self.properties}


def score_all(reward_fns: Sequence[RewardFunction], chats: Sequence[Chat], responses: Sequence[str], group_size: int) -> dict[str, jax.Array]:
    """The union of several reward functions' scores; a property scored twice is an error."""
    scores: dict[str, jax.Array] = {}
    for fn in reward_fns:
        for name, values in fn(chats, responses, group_size).items():
            if name in scores:
                raise ValueError(f"property {name!r} is scored by more than one reward function")
            scores[name] = values
    return scores
