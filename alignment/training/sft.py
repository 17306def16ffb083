"""Supervised fine-tuning: next-token cross-entropy on response tokens given a chat prompt.

A training example is ``prompt + completion`` token ids (``alignment.data.render`` splits a chat
into the two) with a target mask that is 1 on completion tokens. For a batch of right-padded
rows the loss is the mean negative log-likelihood of the targets::

    loss = sum_{b,t} m[b,t+1] * -log softmax(f(x[b,:t+1]))[x[b,t+1]] / sum_{b,t} m[b,t+1]

where ``f`` is the decoder and ``m`` the target mask; prompt and padding tokens are context only.
(One example per row: the decoder takes no segment ids, so packed examples would attend to
each other.)
"""

from __future__ import annotations

from typing import NamedTuple, Sequence

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx

from alignment.data.tokenization import ChatTokenizer, render
from alignment.training.steps import make_train_step


Example = tuple[Sequence[int], Sequence[bool]]


class SFTBatch(NamedTuple):
    """Right-padded rows: ``tokens`` int32 ``[B, T]``, ``targets`` and ``valid`` bool ``[B, T]``.

    ``valid`` marks real (non-padding) tokens; ``targets`` marks the tokens that are predicted.
    """

    tokens: np.ndarray
    targets: np.ndarray
    valid: np.ndarray


def encode_example(tokenizer: ChatTokenizer, messages: Sequence[dict[str, str]], response: str) -> Example:
    """Token ids of the chat prompt plus ``response`` (with its end-of-turn), and the target mask."""
    prompt, (completion,) = render(tokenizer, messages, (response,))
    prompt_ids, completion_ids = tokenizer.encode(prompt), tokenizer.encode(completion)
    return prompt_ids + completion_ids, [False] * len(prompt_ids) + [True] * len(completion_ids)


def make_batch(examples: Sequence[Example], length: int, pad_id: int) -> SFTBatch:
    """Right-pads encoded examples to ``length``; raises ``ValueError`` if one is longer."""
    too_long = [i for i, (ids, _) in enumerate(examples) if len(ids) > length]
    if too_long:
        raise ValueError(f"examples {too_long[:5]} are longer than the batch length {length}")
    shape = (len(examples), length)
    tokens, targets, valid = np.full(shape, pad_id, np.int32), np.zeros(shape, bool), np.zeros(shape, bool)
    for row, (ids, mask) in enumerate(examples):
        tokens[row, : len(ids)], targets[row, : len(ids)], valid[row, : len(ids)] = ids, mask, True
    return SFTBatch(tokens, targets, valid)


def sft_loss(model: nnx.Module, batch: SFTBatch) -> tuple[jax.Array, dict[str, jax.Array]]:
    """The masked mean next-token NLL (module docstring) and ``{"nll", "accuracy", "tokens"}``."""
    tokens, valid = jnp.asarray(batch.tokens), jnp.asarray(batch.valid)
    positions = jnp.broadcast_to(jnp.arange(tokens.shape[1] - 1, dtype=jnp.int32), tokens[:, :-1].shape)
    logits, _ = model(tokens[:, :-1], positions, valid[:, :-1])
    labels, weights = tokens[:, 1:], jnp.asarray(batch.targets[:, 1:], jnp.float32)
    nll = optax.softmax_cross_entropy_with_integer_labels(logits, labels)
    count = jnp.maximum(weights.sum(), 1.0)
    loss = (nll * weights).sum() / count
    accuracy = ((logits.argmax(-1) == labels) * weights).sum() / count
    return loss, {"nll": loss, "accuracy": accuracy, "tokens": weights.sum()}


train_step = make_train_step(sft_loss)
"""``train_step(model, optimizer, batch) -> metrics``: one optimizer step on ``sft_loss``."""
