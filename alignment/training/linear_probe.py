"""Bradley-Terry reward heads fitted on frozen backbone features (a linear probe).

With a frozen backbone and r(x, y) = w . h(x, y) + b, the BT margin of a pair is
w . (h+ - h-), so fitting the head is L2-regularised logistic regression on feature differences:

    min_w  mean_i preference_loss(w . (h+_i - h-_i), P_i)  +  (l2 / 2) |w|^2

(b cancels in every margin). Features are computed once, one forward pass per sequence, so the
fit itself is seconds even when a backbone forward pass costs minutes: the cheap way to get a
reward model from a large backbone on a CPU, and a strong baseline for full fine-tuning.
"""

from __future__ import annotations

from collections.abc import Iterable

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx

from alignment.data import RewardBatch
from alignment.models.decoder import Decoder
from alignment.models.heads import RewardModel, gather_tokens
from alignment.training.losses import preference_accuracy, preference_loss
from alignment.training.reward_model import sequence_inputs


@nnx.jit
def _last_token_features(backbone: Decoder, ids: jax.Array, mask: jax.Array, last: jax.Array) -> jax.Array:
    hidden, _ = backbone.hidden_states(*sequence_inputs(ids, mask))
    return gather_tokens(hidden, last).astype(jnp.float32)


def pair_features(backbone: Decoder, batches: Iterable[RewardBatch]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Final hidden states at the last token of each valid pair's chosen and rejected sequence.

    Returns ``(chosen [N, D], rejected [N, D], labels [N])``; filler rows are dropped.
    """
    chosen, rejected, labels = [], [], []
    for batch in batches:
        valid = np.asarray(batch.valid)
        chosen.append(np.asarray(_last_token_features(backbone, batch.chosen_ids, batch.chosen_mask, batch.chosen_last))[valid])
        rejected.append(np.asarray(_last_token_features(backbone, batch.rejected_ids, batch.rejected_mask, batch.rejected_last))[valid])
        labels.append(np.asarray(batch.label)[valid])
    return np.concatenate(chosen), np.concatenate(rejected), np.concatenate(labels)


def fit_linear_head(
    chosen: np.ndarray, rejected: np.ndarray, labels: np.ndarray, *, l2: float = 1e-2, max_steps: int = 200
) -> np.ndarray:
    """The probe's weights w [D] (module docstring), fitted with L-BFGS on standardised features."""
    diff = jnp.asarray(chosen - rejected, jnp.float32)
    scale = jnp.std(diff, axis=0) + 1e-6
    x, p = diff / scale, jnp.asarray(labels, jnp.float32)

    def objective(w):
        return jnp.mean(preference_loss(x @ w, p)) + 0.5 * l2 * jnp.sum(w * w)

    optimizer = optax.lbfgs()
    value_and_grad = optax.value_and_grad_from_state(objective)

    @jax.jit
    def step(w, state):
        value, grad = value_and_grad(w, state=state)
        updates, state = optimizer.update(grad, state, w, value=value, grad=grad, value_fn=objective)
        return optax.apply_updates(w, updates), state

    w = jnp.zeros(x.shape[1], jnp.float32)
    state = optimizer.init(w)
    for _ in range(max_steps):
        w, state = step(w, state)
    return np.asarray(w / scale)


def probe_accuracy(w: np.ndarray, chosen: np.ndarray, rejected: np.ndarray, labels: np.ndarray) -> float:
    """Mean pairwise accuracy of the probe's margins w . (h+ - h-)."""
    return float(jnp.mean(preference_accuracy(jnp.asarray((chosen - rejected) @ w), jnp.asarray(labels))))


def set_reward_head(model: RewardModel, w: np.ndarray, property_index: int = 0) -> RewardModel:
    """Writes probe weights into head ``property_index`` of ``model`` (bias 0), in place."""
    kernel = model.kernel[...]
    model.kernel[...] = kernel.at[:, property_index].set(jnp.asarray(w, kernel.dtype))
    model.bias[...] = model.bias[...].at[property_index].set(0.0)
    return model
