"""The RL learner: align a policy to a transformed, aggregated utility with a KL penalty.

Pure pieces in the optax / rlax style (``advantages``, ``kl``, ``losses``), the registered
algorithms (``algorithms``: PPO, RLOO, GRPO, Dr. GRPO, DAPO, GSPO, REINFORCE++), the learner's
pure programs (``programs``) and nested config (``config``: rollout, shaping, KL, loss, critic,
optimizer, faults), reward functions (``scoring``), the
utility config (``utility``), rollout, the reference-reward stage and its cache
(``reference``), best-of-k reranking (``best_of_k``) and the learner's loop (``learner``):
``rl.Learner(policy, reference, tokenizer, reward_fns, chats, references, rl.LearnerConfig())``
then ``.run()``; the README's "Aligning a policy" section runs it end to end on the sandbox.
``rl.lower_learner(decoder_config, learner_config, mesh)`` (``lowering``) lowers a learner's
programs from shapes alone, to check a large model's configuration on any mesh.
"""

from alignment.rl.advantages import gae, group_centered, group_normalized, masked_mean, masked_whiten, rloo
from alignment.rl.algorithms import ALGORITHMS, Algorithm, get_algorithm, register
from alignment.rl.best_of_k import BestOfK, best_of_k, rerank
from alignment.rl.kl import adaptive_coefficient, k1, k2, k3
from alignment.rl.config import CriticConfig, FaultPolicy, KLConfig, LearnerConfig, LossConfig, RewardShaping
from alignment.rl.learner import Learner
from alignment.rl.losses import clipped_surrogate, token_logprobs_and_entropy, value_loss
from alignment.rl.lowering import LearnerLowering, lower_learner
from alignment.rl.reference import (
    BaseRewards,
    ReferenceConfig,
    ScoredSamples,
    compute_base_rewards,
    fingerprint,
    fixed_response_references,
    sample_and_score,
)
from alignment.rl.rollout import PromptStream, RolloutConfig, Samples, sample_groups
from alignment.rl.scoring import FunctionReward, GPMReward, ModelReward, RewardFunction, score_all
from alignment.rl.utility import Utility
from alignment.training.optimizers import OptimizerConfig

__all__ = [
    "ALGORITHMS",
    "Algorithm",
    "BaseRewards",
    "BestOfK",
    "CriticConfig",
    "FaultPolicy",
    "FunctionReward",
    "GPMReward",
    "KLConfig",
    "Learner",
    "LearnerConfig",
    "LearnerLowering",
    "LossConfig",
    "ModelReward",
    "OptimizerConfig",
    "PromptStream",
    "ReferenceConfig",
    "RewardFunction",
    "RewardShaping",
    "RolloutConfig",
    "Samples",
    "ScoredSamples",
    "Utility",
    "adaptive_coefficient",
    "best_of_k",
    "clipped_surrogate",
    "compute_base_rewards",
    "fingerprint",
    "fixed_response_references",
    "gae",
    "get_algorithm",
    "group_centered",
    "group_normalized",
    "k1",
    "k2",
    "k3",
    "lower_learner",
    "masked_mean",
    "masked_whiten",
    "register",
    "rerank",
    "rloo",
    "sample_and_score",
    "sample_groups",
    "score_all",
    "token_logprobs_and_entropy",
    "value_loss",
]
