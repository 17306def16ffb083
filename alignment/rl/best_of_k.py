"""Best-of-k: rerank k base-policy responses per prompt by a utility, keep the best.

    y* = argmax_{j < k} U(x, y_j),   U(x, y) = aggregate_i( transform(r_i(x, y), r_ref,i(x)) ; w )

The cheap baseline of Wang et al., "Transforming and Combining Rewards for Aligning Large
Language Models" (arXiv 2402.00742), and an evaluation policy. Sampling and scoring
(``sample_and_score``) are separate from reranking (``rerank``), so one set of samples serves
several utilities (e.g. the LSC AND ``Utility()`` against the raw sum ``Utility("identity")``)
and a k-sweep: sample the largest k once and rerank its prefixes (``rerank(scored, ..., k=4)``
uses samples ``0 .. 3``). With a ``GPMReward`` the rewards of a prefix were still computed
against all the samples of the prompt. Ties go to the lowest index.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx
from jax.sharding import Mesh

from alignment.models.tokenizer import Tokenizer
from alignment.rl.reference import ReferenceConfig, ScoredSamples, sample_and_score
from alignment.rl.rollout import RolloutConfig
from alignment.rl.scoring import Chat, RewardFunction
from alignment.rl.utility import Utility


@dataclasses.dataclass(frozen=True)
class BestOfK:
    """Per prompt: the chosen ``texts`` [N] and their ``index`` [N] among the k samples, whether
    the chosen response ``ended`` with EOS [N], and all k samples' ``utilities`` [N, k] and
    ``rewards`` ``{property: [N, k]}``."""

    texts: list[str]
    index: np.ndarray
    ended: np.ndarray
    utilities: np.ndarray
    rewards: dict[str, np.ndarray]

    @property
    def chosen_rewards(self) -> dict[str, np.ndarray]:
        """``{property: [N]}`` the rewards of the chosen responses."""
        return {name: np.take_along_axis(r, self.index[:, None], axis=1)[:, 0] for name, r in self.rewards.items()}


def rerank(
    scored: ScoredSamples,
    utility: Utility,
    references: Mapping[str, np.ndarray | jax.Array] | None = None,
    k: int | None = None,
) -> BestOfK:
    """The best of the first ``k`` (default: all) scored samples of each prompt by ``utility``.

    ``references``: ``{property: r_ref [N]}`` for every scored property (e.g.
    ``BaseRewards.references()``), broadcast to the k samples; may be ``None`` only for a
    utility that reads no reference (``Utility("identity", ...)``).
    """
    k = scored.num_samples if k is None else k
    if not 1 <= k <= scored.num_samples:
        raise ValueError(f"k must be in [1, {scored.num_samples}] (the samples per prompt); got k={k}")
    properties = scored.properties
    n = scored.num_prompts
    if references is None:
        if utility.needs_references:
            raise ValueError(f"the utility's transform {utility.transform!r} reads reference rewards; pass references")
        references = {name: np.zeros(n, np.float32) for name in properties}
    missing = [name for name in properties if name not in references]
    if missing:
        raise ValueError(f"references lack the properties {missing}; scored properties: {list(properties)}, references: {list(references)}")
    shapes = {name: np.shape(references[name]) for name in properties}
    if any(shape != (n,) for shape in shapes.values()):
        raise ValueError(f"each reference must have shape [num_prompts] = ({n},); got {shapes}")
    scores = {name: scored.rewards[name][:, :k] for name in properties}
    flat_rewards = jnp.stack([scores[name].reshape(-1) for name in properties], axis=-1)
    flat_references = jnp.repeat(jnp.stack([jnp.asarray(references[name], jnp.float32) for name in properties], axis=-1), k, axis=0)
    utilities = np.asarray(utility(flat_rewards, flat_references, properties, k)).reshape(n, k)
    index = utilities.argmax(axis=1)
    texts = [str(scored.texts[i, j]) for i, j in enumerate(index)]
    return BestOfK(texts, index, scored.ended[np.arange(n), index], utilities, scores)


def best_of_k(
    policy: nnx.Module,
    tokenizer: Tokenizer,
    chats: Sequence[Chat],
    reward_fns: Sequence[RewardFunction],
    utility: Utility,
    references: Mapping[str, np.ndarray | jax.Array] | None,
    k: int,
    key: jax.Array,
    *,
    rollout: RolloutConfig,
    config: ReferenceConfig = ReferenceConfig(),
    mesh: Mesh | None = None,
) -> BestOfK:
    """Samples k responses per chat from ``policy`` with ``key`` as ``rollout`` says, scores them
    and reranks by ``utility`` (``rerank``). ``config`` gives the chunking; its ``num_samples``
    is replaced by k and its ``seed`` is unused."""
    scored = sample_and_score(policy, tokenizer, chats, reward_fns, dataclasses.replace(config, num_samples=k), key,
                              rollout=rollout, mesh=mesh)
    return rerank(scored, utility, references)
