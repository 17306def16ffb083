"""Orbax round trip of model parameters, including restoring onto a different mesh."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from alignment.models import Decoder, get_config
from alignment.models.heads import RewardModel
from alignment.models.loaders.checkpoint import restore_params, save_params
from alignment.models.partitioning import shard_model
from alignment.parallel import make_mesh

TINY = get_config("tiny")


def _abstract():
    return nnx.eval_shape(lambda: Decoder(TINY, rngs=nnx.Rngs(123)))


def _assert_same_params(a, b):
    for x, y in zip(jax.tree.leaves(nnx.state(a, nnx.Param)), jax.tree.leaves(nnx.state(b, nnx.Param))):
        np.testing.assert_array_equal(np.asarray(x), np.asarray(y))


def test_round_trip(tmp_path):
    model = Decoder(TINY, rngs=nnx.Rngs(0))
    save_params(model, tmp_path / "ckpt")
    restored = restore_params(_abstract(), tmp_path / "ckpt")
    _assert_same_params(model, restored)
    tokens = jnp.arange(6, dtype=jnp.int32)[None]
    args = (tokens, tokens, jnp.ones((1, 6), bool))
    np.testing.assert_array_equal(restored(*args)[0], model(*args)[0])
    with pytest.raises(FileExistsError, match="ckpt"):
        save_params(model, tmp_path / "ckpt")


def test_restore_onto_a_different_mesh(tmp_path):
    saved_on = make_mesh(data=8)
    model = shard_model(Decoder(TINY, rngs=nnx.Rngs(0)), make_mesh(data=1, fsdp=8, model=1))
    save_params(model, tmp_path / "ckpt")
    target = make_mesh(data=2, fsdp=2, model=2)
    restored = restore_params(_abstract(), tmp_path / "ckpt", mesh=target)
    assert restored.layers.gate[...].sharding.mesh.shape == target.shape
    assert restored.layers.gate[...].sharding.spec == jax.P(None, "fsdp", "model")
    _assert_same_params(model, restored)
    replicated = restore_params(_abstract(), tmp_path / "ckpt", mesh=saved_on)
    assert replicated.embed[...].sharding.is_fully_replicated  # fsdp and model have size 1 here
    _assert_same_params(model, replicated)


def test_errors_name_the_directory(tmp_path):
    with pytest.raises(FileNotFoundError, match="absent"):
        restore_params(_abstract(), tmp_path / "absent")
    save_params(Decoder(TINY, rngs=nnx.Rngs(0)), tmp_path / "decoder")
    reward_model = nnx.eval_shape(lambda: RewardModel(Decoder(TINY, rngs=nnx.Rngs(0)), rngs=nnx.Rngs(1)))
    with pytest.raises(ValueError, match="decoder"):
        restore_params(reward_model, tmp_path / "decoder")
