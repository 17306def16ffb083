"""Training: preference losses (``losses``), the shared jitted optimizer step (``steps``), SFT
(``sft``), reward-model training (``reward_model``: ``RewardModelTrainer`` for Bradley-Terry and
GPM), linear probes on frozen features (``linear_probe``), Orbax checkpoints of a run
(``checkpointing``), metrics logs (``metrics``) and synthetic preferences with a known answer
(``synthetic``: cyclic preferences that a GPM fits and no reward can)."""

from alignment.training.checkpointing import Checkpoints
from alignment.training.linear_probe import fit_linear_head, pair_features, probe_accuracy, set_reward_head
from alignment.training.losses import preference_accuracy, preference_loss
from alignment.training.metrics import MetricsWriter
from alignment.training.optimizers import OptimizerConfig
from alignment.training.reward_model import (
    OBJECTIVES,
    TRAINABLE,
    RewardModelTrainer,
    RewardTrainConfig,
    bt_margins,
    evaluate_pairs,
    pair_accuracies,
    gpm_margins,
    make_optimizer,
    pair_loss,
    place_batch,
    sequence_inputs,
)
from alignment.training.sft import SFTBatch, encode_example, make_batch, sft_loss
from alignment.training.steps import make_eval_step, make_train_step, pin_to_mesh
from alignment.training.synthetic import CYCLIC_BACKBONE, CyclicFit, cyclic_pairs, cyclic_preferences, fit_cyclic, fit_pairs

__all__ = [
    "CYCLIC_BACKBONE",
    "OBJECTIVES",
    "TRAINABLE",
    "Checkpoints",
    "CyclicFit",
    "MetricsWriter",
    "OptimizerConfig",
    "RewardModelTrainer",
    "RewardTrainConfig",
    "SFTBatch",
    "bt_margins",
    "cyclic_pairs",
    "cyclic_preferences",
    "encode_example",
    "evaluate_pairs",
    "pair_accuracies",
    "fit_cyclic",
    "fit_linear_head",
    "fit_pairs",
    "gpm_margins",
    "make_batch",
    "make_eval_step",
    "make_optimizer",
    "make_train_step",
    "pin_to_mesh",
    "pair_features",
    "pair_loss",
    "place_batch",
    "preference_accuracy",
    "preference_loss",
    "probe_accuracy",
    "sequence_inputs",
    "set_reward_head",
    "sft_loss",
]
