"""Reward-model training: GPM versus Bradley-Terry on cyclic preferences, exact skew symmetry,
soft labels, and a sharded step that equals the single-device step."""

import dataclasses
import itertools
import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx
from jax._src.array import ArrayImpl

from alignment import data, parallel
from alignment.models import DecoderConfig, Decoder, lora
from alignment.models.heads import GPMModel, RewardModel, gpm_score
from alignment.models.partitioning import shard_model
from alignment.training.optimizers import OptimizerConfig
from alignment.training.reward_model import RewardModelTrainer, RewardTrainConfig, sequence_inputs
from alignment.training.synthetic import CYCLIC_BACKBONE, cyclic_preferences, fit_cyclic, fit_pairs

BACKBONE = CYCLIC_BACKBONE


def cyclic_batch() -> data.RewardBatch:
    """a > b > c > a in every context (reversed in odd contexts): no ranking fits more than 2/3."""
    return cyclic_preferences(contexts=4, items=3)


def test_gpm_fits_cyclic_preferences_that_bradley_terry_cannot():
    fit = fit_cyclic(contexts=4, items=3, num_blocks=2)
    assert fit.accuracy["gpm"] >= 0.95
    assert fit.accuracy["bt"] <= 0.70

    batch, gpm = fit.batch, fit.models["gpm"]

    # Exact skew symmetry on the trained model: s(a, b) = -s(b, a) and s(a, a) = 0, bitwise.
    tokens, positions, kv_mask = sequence_inputs(jnp.asarray(batch.chosen_ids), jnp.asarray(batch.chosen_mask))
    v_chosen, weights = gpm(tokens, positions, kv_mask, jnp.asarray(batch.chosen_prompt_last))
    tokens, positions, kv_mask = sequence_inputs(jnp.asarray(batch.rejected_ids), jnp.asarray(batch.rejected_mask))
    v_rejected, _ = gpm(tokens, positions, kv_mask, jnp.asarray(batch.rejected_prompt_last))
    forward, backward = gpm_score(v_chosen, v_rejected, weights), gpm_score(v_rejected, v_chosen, weights)
    np.testing.assert_array_equal(np.asarray(forward), -np.asarray(backward))
    np.testing.assert_array_equal(np.asarray(gpm_score(v_chosen, v_chosen, weights)), 0.0)


def test_soft_labels_are_fitted_as_probabilities():
    """One context, two responses, P(a > b) = 0.8: BT's fitted margin approaches logit(0.8)."""
    (batch,) = data.RewardBatcher(pad_id=0, batch_size=1, max_length=3, min_context_tokens=1)(
        [data.EncodedPair([1], [5], [6], 0.8)]
    )
    model = RewardModel(Decoder(BACKBONE, rngs=nnx.Rngs(0)), rngs=nnx.Rngs(1))
    fit_pairs(model, "bt", batch, steps=300)
    both = sequence_inputs(jnp.concatenate([batch.chosen_ids, batch.rejected_ids]), jnp.concatenate([batch.chosen_mask, batch.rejected_mask]))
    rewards = model(*both)[:, 0]
    np.testing.assert_allclose(rewards[0] - rewards[1], np.log(0.8 / 0.2), atol=0.1)


def test_config_errors_name_the_valid_choices():
    with pytest.raises(ValueError, match="unknown objective 'dpo'; valid objectives: bt, gpm"):
        RewardTrainConfig(objective="dpo")
    with pytest.raises(ValueError, match="valid: all, head"):
        RewardTrainConfig(trainable="adapters")
    model = GPMModel(Decoder(BACKBONE, rngs=nnx.Rngs(0)), num_blocks=1, rngs=nnx.Rngs(1))
    with pytest.raises(ValueError, match="a GPM judges one property"):
        RewardModelTrainer(model, RewardTrainConfig(objective="gpm"), properties=("helpful", "harmless"))
    bt = RewardModelTrainer(RewardModel(Decoder(BACKBONE, rngs=nnx.Rngs(0)), rngs=nnx.Rngs(1)), RewardTrainConfig())
    with pytest.raises(ValueError, match="unknown property 'harmless'; this model judges: reward"):
        bt.train_step(cyclic_batch(), "harmless")


def test_frozen_backbone_trains_only_the_head():
    model = RewardModel(Decoder(BACKBONE, rngs=nnx.Rngs(0)), rngs=nnx.Rngs(1))
    before = jax.tree.map(np.asarray, nnx.state(model))
    trainer = RewardModelTrainer(model, RewardTrainConfig(optimizer=OptimizerConfig(learning_rate=1e-2, schedule="cosine"), trainable="head"))
    trainer.train_step(cyclic_batch())
    after = nnx.state(model)
    np.testing.assert_array_equal(after["backbone"]["embed"][...], before["backbone"]["embed"][...])
    assert not np.allclose(after["kernel"][...], before["kernel"][...])


def test_sharded_training_step_equals_single_device_step(tmp_path):
    config = DecoderConfig(vocab_size=32, embed_dim=32, num_layers=2, num_heads=4, num_kv_heads=2, head_dim=8, mlp_dim=64)
    rng = np.random.default_rng(0)
    pairs = [
        data.EncodedPair(list(rng.integers(1, 32, 5)), list(rng.integers(1, 32, 3)), list(rng.integers(1, 32, 4)), float(rng.uniform()))
        for _ in range(8)
    ]
    (batch,) = data.RewardBatcher(pad_id=0, batch_size=8, max_length=12, min_context_tokens=1)(pairs)
    train_config = RewardTrainConfig(optimizer=OptimizerConfig(learning_rate=1e-2, warmup_steps=0, schedule="cosine"))

    def make():
        return RewardModel(Decoder(config, rngs=nnx.Rngs(0)), num_properties=2, rngs=nnx.Rngs(1))

    single = make()
    single_metrics = RewardModelTrainer(single, train_config, properties=("helpful", "harmless")).train_step(batch, "harmless")

    mesh = parallel.make_mesh(data=2, fsdp=2, model=2)
    sharded = shard_model(make(), mesh)
    trainer = RewardModelTrainer(sharded, train_config, properties=("helpful", "harmless"), mesh=mesh, workdir=tmp_path)
    sharded_metrics = trainer.train_step(batch, "harmless")
    trainer.save()
    trainer.checkpoints.close()

    for name in ("loss", "accuracy", "grad_norm"):
        np.testing.assert_allclose(sharded_metrics[name], single_metrics[name], rtol=1e-5)
    got, want = nnx.state(sharded), nnx.state(single)
    # The BT head's bias has zero gradient in exact arithmetic (a shift cancels in r+ - r-);
    # Adam would blow its rounding noise up to the learning rate, so it is not compared.
    assert float(jnp.abs(got["bias"][...]).max()) < 1e-2 and float(jnp.abs(want["bias"][...]).max()) < 1e-2
    got["bias"], want["bias"] = got["bias"].replace(0.0), want["bias"].replace(0.0)
    for a, b in zip(jax.tree.leaves(got), jax.tree.leaves(want)):
        # Adam normalises each update to about the learning rate (1e-2); reduction order differs by mesh.
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=0, atol=1e-4)
    assert nnx.state(sharded)["backbone"]["layers"]["gate"][...].sharding.spec == jax.sharding.PartitionSpec(None, "fsdp", "model")
    assert (tmp_path / "checkpoints" / "1").is_dir()


def _make_model():
    return RewardModel(Decoder(BACKBONE, rngs=nnx.Rngs(0)), rngs=nnx.Rngs(1))


def _assert_same_state(a, b):
    for x, y in zip(jax.tree.leaves(nnx.state(a)), jax.tree.leaves(nnx.state(b))):
        np.testing.assert_array_equal(np.asarray(x), np.asarray(y))


def _stream(steps):
    """A stream whose batches differ (so that a wrong data position changes the result)."""
    batch = cyclic_batch()
    return [("reward", batch._replace(label=np.full_like(batch.label, 1.0 - 0.1 * i))) for i in range(steps)]


def test_resume_from_a_checkpoint_continues_exactly(tmp_path):
    batches = _stream(4)
    config = RewardTrainConfig(optimizer=OptimizerConfig(learning_rate=1e-2, schedule="cosine"), num_steps=4)
    straight = _make_model()
    RewardModelTrainer(straight, config).fit(batches, progress=False)

    with RewardModelTrainer(_make_model(), config, workdir=tmp_path) as interrupted:
        interrupted.fit(batches, until=2, progress=False)  # stopped after two steps (checkpointed)
    resumed_model = _make_model()
    with RewardModelTrainer(resumed_model, config, workdir=tmp_path) as resumed:
        assert resumed.restore() == 2 and resumed.data_position == 2
        resumed.fit(batches, progress=False)  # the stream from its start: the trainer skips what it had used
    _assert_same_state(resumed_model, straight)
    lines = (tmp_path / "metrics.jsonl").read_text().splitlines()
    assert [json.loads(line)["step"] for line in lines] == [2, 4] and '"train/loss"' in lines[-1]


def test_a_trainer_fits_in_stages_and_keeps_its_files_open(tmp_path):
    batches = _stream(4)
    config = RewardTrainConfig(optimizer=OptimizerConfig(learning_rate=1e-2, schedule="cosine"), num_steps=4)
    straight = _make_model()
    RewardModelTrainer(straight, config).fit(batches, progress=False)
    staged = _make_model()
    trainer = RewardModelTrainer(staged, config, workdir=tmp_path)
    stream = iter(batches)
    trainer.fit(stream, until=1, progress=False)
    trainer.fit(stream, eval_batches=lambda: batches[:1], progress=False)
    trainer.save(wait=True)  # no "closed" error: fit closes nothing
    assert trainer.checkpoints.steps == [1, 4]
    trainer.close()
    _assert_same_state(staged, straight)
    with pytest.raises(ValueError, match=r"fit\(until=5\) needs step 4 <= until <= num_steps 4"):
        trainer.fit(stream, until=5)


def test_checkpoints_without_a_workdir_are_a_clear_error():
    trainer = RewardModelTrainer(_make_model(), RewardTrainConfig())
    for call in (trainer.save, trainer.restore):
        with pytest.raises(ValueError, match="no workdir.*pass workdir="):
            call()


def test_metrics_stay_on_the_devices_until_they_are_logged(monkeypatch):
    fetched = []
    value = ArrayImpl._value
    monkeypatch.setattr(ArrayImpl, "_value", property(lambda x: fetched.append(x.size) or value.fget(x)))
    trainer = RewardModelTrainer(_make_model(), RewardTrainConfig(optimizer=OptimizerConfig(learning_rate=1e-2, schedule="cosine"), num_steps=6, log_every=3))
    batches = _stream(6)
    metrics = [trainer.train_step(batch) for _, batch in batches[:3]]
    assert fetched == [] and all(isinstance(m["loss"], jax.Array) for m in metrics)
    trainer.config = dataclasses.replace(trainer.config, num_steps=9)
    result = trainer.fit(itertools.cycle(batches), progress=False)
    assert len(fetched) == 2 * len(result)  # one fetch of each metric per log (steps 6 and 9), none per step


def test_a_lora_reward_model_trains_adapters_and_head_resumes_exactly_and_merges(tmp_path):
    batches = _stream(4)
    config = RewardTrainConfig(optimizer=OptimizerConfig(learning_rate=1e-2, schedule="cosine"), num_steps=4,
                               lora=lora.LoRAConfig(rank=2, alpha=4.0))
    straight = _make_model()
    base = jax.tree.map(np.asarray, nnx.state(straight))
    trainer = RewardModelTrainer(straight, config)
    trainer.fit(batches, progress=False)
    assert float(jnp.abs(straight.backbone.layers.up_lora_b[...]).max()) > 0  # the adapters train
    np.testing.assert_array_equal(nnx.state(straight)["backbone"]["layers"]["q"][...], base["backbone"]["layers"]["q"][...])
    assert not np.allclose(nnx.state(straight)["kernel"][...], base["kernel"][...])
    moments = jax.tree.leaves(nnx.state(trainer.optimizer))
    trained = jax.tree.leaves(nnx.state(straight, trainer.wrt))
    assert sum(x.size for x in moments) < 3 * sum(x.size for x in trained) + 10  # Adam's state is the adapters' and the head's

    with RewardModelTrainer(_make_model(), config, workdir=tmp_path) as interrupted:
        interrupted.fit(batches, until=2, progress=False)
    resumed_model = _make_model()
    with RewardModelTrainer(resumed_model, config, workdir=tmp_path) as resumed:
        assert resumed.restore() == 2
        resumed.fit(batches, progress=False)
        plain = resumed.merged_model()
    _assert_same_state(resumed_model, straight)
    assert plain.backbone.lora is None and resumed_model.backbone.lora is not None
    inputs = sequence_inputs(jnp.asarray(cyclic_batch().chosen_ids), jnp.asarray(cyclic_batch().chosen_mask))
    np.testing.assert_allclose(plain(*inputs), resumed_model(*inputs), atol=1e-5)
    with pytest.raises(ValueError, match="freezes the backbone, so its lora adapters would not train"):
        dataclasses.replace(config, trainable="head")
