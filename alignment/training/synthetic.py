"""Synthetic preference data with a known answer: cyclic preferences, which no reward fits.

``cyclic_preferences()`` is one batch of pairs over ``contexts`` one-token prompts and ``items``
one-token responses with ``y_0 > y_1 > ... > y_(n-1) > y_0`` in every context (reversed in odd
contexts, so that the context matters). Any ranking (a Bradley-Terry reward) gets at most
``(n - 1) / n`` of a cycle right, 2/3 for three items; a general preference model (Zhang et al.,
arXiv 2410.02197) can fit all of it. ``fit_cyclic()`` trains both on it (a few seconds on CPU)::

    from alignment.training.synthetic import fit_cyclic

    fit = fit_cyclic()
    print(fit.accuracy)   # {'gpm': 1.0, 'bt': 0.667}

Token ids: 0 pads, ``1 .. contexts`` are the contexts, ``contexts + 1 .. contexts + items`` the
responses; ``CYCLIC_BACKBONE`` is a decoder just big enough for them.
"""

from __future__ import annotations

import dataclasses
import itertools

from flax import nnx

from alignment import data
from alignment.data import RewardBatch
from alignment.models.config import DecoderConfig
from alignment.models.decoder import Decoder
from alignment.models.heads import GPMModel, RewardModel
from alignment.training.optimizers import OptimizerConfig
from alignment.training.reward_model import RewardModelTrainer, RewardTrainConfig

CYCLIC_BACKBONE = DecoderConfig(vocab_size=16, embed_dim=32, num_layers=1, num_heads=2, num_kv_heads=1, head_dim=16, mlp_dim=64)


def cyclic_pairs(contexts: int = 4, items: int = 3) -> list[data.EncodedPair]:
    """``contexts * items`` pairs: ``y_i > y_(i+1 mod items)`` (the other way in odd contexts), label 1."""
    pairs = []
    for context in range(contexts):
        for i in range(items):
            winner, loser = i, (i + 1) % items
            if context % 2:
                winner, loser = loser, winner
            pairs.append(data.EncodedPair([1 + context], [1 + contexts + winner], [1 + contexts + loser], 1.0))
    return pairs


def cyclic_preferences(contexts: int = 4, items: int = 3) -> RewardBatch:
    """All of ``cyclic_pairs(contexts, items)`` as one left-padded batch of length 3 (pad id 0)."""
    pairs = cyclic_pairs(contexts, items)
    (batch,) = data.RewardBatcher(pad_id=0, batch_size=len(pairs), max_length=3, min_context_tokens=1)(pairs)
    return batch


def fit_pairs(model: RewardModel | GPMModel, objective: str, batch: RewardBatch, *, steps: int = 150,
              learning_rate: float = 1e-2, **config) -> float:
    """Trains ``model`` in place for ``steps`` full-batch steps on ``batch``; returns its accuracy there."""
    trainer = RewardModelTrainer(model, RewardTrainConfig(objective=objective, optimizer=OptimizerConfig(learning_rate=learning_rate, schedule="cosine"),
                                                        num_steps=steps, **config))
    trainer.fit(itertools.repeat(("reward", batch)), progress=False)
    return float(trainer.evaluate([("reward", batch)])["reward/accuracy"])


@dataclasses.dataclass
class CyclicFit:
    """A Bradley-Terry model and a GPM trained on ``batch``: ``models`` and ``accuracy`` by
    objective ("bt", "gpm")."""

    batch: RewardBatch
    models: dict[str, nnx.Module]
    accuracy: dict[str, float]


def fit_cyclic(*, contexts: int = 4, items: int = 3, num_blocks: int = 2, steps: int = 150, seed: int = 0,
               backbone: DecoderConfig = CYCLIC_BACKBONE) -> CyclicFit:
    """Trains a BT ``RewardModel`` and a ``GPMModel`` (``num_blocks`` blocks) of the same backbone
    on ``cyclic_preferences(contexts, items)``; the accuracies are on that batch (the claim is
    about what each model can fit, not about generalisation)."""
    if 1 + contexts + items > backbone.vocab_size:
        raise ValueError(f"{contexts} contexts and {items} items need {1 + contexts + items} token ids; "
                         f"the backbone's vocab_size is {backbone.vocab_size}")
    batch = cyclic_preferences(contexts, items)
    models = {
        "gpm": GPMModel(Decoder(backbone, rngs=nnx.Rngs(seed)), num_blocks=num_blocks, rngs=nnx.Rngs(seed + 1)),
        "bt": RewardModel(Decoder(backbone, rngs=nnx.Rngs(seed)), rngs=nnx.Rngs(seed + 1)),
    }
    accuracy = {kind: fit_pairs(model, kind, batch, steps=steps) for kind, model in models.items()}
    return CyclicFit(batch, models, accuracy)
