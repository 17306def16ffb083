"""Training infrastructure: preference losses, Orbax checkpoints (incl. re-sharding), metrics logs."""

import json

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from flax import nnx
from jax.sharding import NamedSharding, PartitionSpec as P

from alignment import parallel
from alignment.training.checkpointing import Checkpoints
from alignment.training.losses import preference_accuracy, preference_loss
from alignment.training.metrics import MetricsWriter


def test_preference_loss_is_bradley_terry_with_soft_labels():
    m = jnp.array([2.0, -1.0, 0.0])
    np.testing.assert_allclose(preference_loss(m), -jax.nn.log_sigmoid(m), rtol=1e-6)
    p = jnp.array([0.7, 0.2, 0.5])
    z = np.asarray(m, np.float64) / 0.1
    expected = p * np.logaddexp(0, -z) + (1 - p) * np.logaddexp(0, z)
    np.testing.assert_allclose(preference_loss(m, p, beta=0.1), expected, rtol=1e-5)
    # Finite for huge margins, and the soft-label optimum sits at sigmoid(m) = P.
    assert bool(jnp.all(jnp.isfinite(preference_loss(jnp.array([1e4, -1e4]), 0.3))))
    grad = jax.grad(lambda x: preference_loss(x, 0.7))(jnp.log(0.7 / 0.3))
    np.testing.assert_allclose(grad, 0.0, atol=1e-6)
    with pytest.raises(ValueError, match="beta must be > 0"):
        preference_loss(m, beta=0.0)


def test_preference_accuracy_follows_the_label_side():
    m = jnp.array([1.0, 1.0, -1.0, 0.3])
    label = jnp.array([1.0, 0.2, 0.1, 0.5])
    np.testing.assert_allclose(preference_accuracy(m, label), [1.0, 0.0, 1.0, 0.5])


class _Tiny(nnx.Module):
    def __init__(self, rngs):
        self.w = nnx.Param(jax.random.normal(rngs.params(), (8, 4)))


def test_checkpoint_round_trip_restores_onto_another_mesh(tmp_path):
    model = _Tiny(nnx.Rngs(0))
    optimizer = nnx.Optimizer(model, optax.adam(1e-3), wrt=nnx.Param)
    state = {"train": nnx.state((model, optimizer)), "rng": jax.random.key_data(jax.random.key(7))}
    checkpoints = Checkpoints(tmp_path / "ckpt", max_to_keep=2)
    for step in (1, 2, 3):
        checkpoints.save(step, state, {"data_position": 10 * step}, wait=True)
    assert checkpoints.steps == [2, 3]

    mesh = parallel.make_mesh(data=2, fsdp=4)
    sharded = NamedSharding(mesh, P("fsdp", None))
    replicated = NamedSharding(mesh, P())
    abstract = jax.tree.map(
        lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=sharded if x.shape == (8, 4) else replicated), state
    )
    restored, meta = checkpoints.restore(abstract)
    checkpoints.close()
    assert meta == {"data_position": 30}
    for got, want in zip(jax.tree.leaves(restored), jax.tree.leaves(state)):
        np.testing.assert_array_equal(got, want)
    assert restored["train"][0]["w"][...].sharding == sharded
    with pytest.raises(FileNotFoundError, match=r"no checkpoint for step 1 .* available steps: \[2, 3\]"):
        Checkpoints(tmp_path / "ckpt").restore(abstract, step=1)


def test_metrics_go_to_jsonl_and_tensorboard(tmp_path):
    with MetricsWriter(tmp_path) as writer:
        writer.write(1, {"loss": jnp.float32(0.5), "accuracy": 0.75}, prefix="train")
        writer.write(2, {"loss": float("nan")}, prefix="eval")
    lines = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert lines == [{"step": 1, "train/loss": 0.5, "train/accuracy": 0.75}, {"step": 2, "eval/loss": "nan"}]
    assert list((tmp_path / "tensorboard").glob("events.out.tfevents.*"))
