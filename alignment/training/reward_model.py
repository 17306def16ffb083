"""Reward-model training: Bradley-Terry (hard or soft labels) and general preference models.

A batch is an ``alignment.data.RewardBatch`` of preference pairs plus the index of the
property it judges. Both objectives reduce a pair to a margin m (``losses.py``):

    Bradley-Terry:  m = r_p(x, y+) - r_p(x, y-)          (``RewardModel``, head p of P)
    GPM:            m = s(y+ > y- | x) = <R(x) v+, v->    (``GPMModel``; Zhang et al., "General Preference
                    Modeling with Preference Representations for Aligning Language Models", arXiv 2410.02197)

and minimise -[P log sigmoid(m / beta) + (1 - P) log sigmoid(-m / beta)] over valid pairs.
Chosen and rejected sequences run through the backbone as one [2B, L] batch. Several
properties share a backbone with one head each (batches name their property), or train as
separate models (one trainer each).

Metrics stay on the devices until they are logged (every ``log_every`` steps), so training
steps are dispatched without waiting for each other. A checkpoint holds the model, the
optimizer, the step and the data position (training batches consumed); after ``restore`` the
next ``fit`` skips that many batches of the stream it is given, so a resumed run passes the
stream from its start.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx
from jax.sharding import Mesh
from tqdm.auto import tqdm

from alignment import nested
from alignment.data import RewardBatch
from alignment.models import lora
from alignment.models.heads import GPMModel, RewardModel, gpm_score
from alignment.models.layers import positions_from_mask
from alignment.models.lora import LoRAConfig
from alignment.models.partitioning import shard_model
from alignment.parallel import DEFAULT_RULES, logical_sharding
from alignment.training import optimizers
from alignment.training.checkpointing import Checkpoints
from alignment.training.losses import preference_accuracy, preference_loss
from alignment.training.metrics import MetricsWriter
from alignment.training.steps import make_eval_step, make_train_step, pin_to_mesh

OBJECTIVES = ("bt", "gpm")
TRAINABLE = {"all": nnx.Param, "head": nnx.All(nnx.Param, nnx.Not(nnx.PathContains("backbone")))}


@dataclasses.dataclass(frozen=True)
class RewardTrainConfig:
    """What a reward-model run optimises and how.

    ``beta`` defaults to 1 for Bradley-Terry and 0.1 for GPM; ``trainable="head"`` freezes the
    backbone (a linear probe on its features, at the cost of a forward pass); ``lora`` trains
    low-rank adapters on the backbone (and the heads) instead of all its weights. ``optimizer``
    is the RL learner's ``OptimizerConfig`` (cosine after the warm-up by default) over ``num_steps``.
    """

    objective: str = "bt"
    beta: float | None = None
    optimizer: optimizers.OptimizerConfig = optimizers.OptimizerConfig(learning_rate=1e-4, schedule="cosine")
    num_steps: int = 1000
    trainable: str = "all"
    lora: LoRAConfig | None = None
    log_every: int = 10
    eval_every: int = 100
    checkpoint_every: int = 0  # 0: only at the end (when a workdir is given)

    def __post_init__(self):
        nested.check_fields(self, non_negative=("num_steps", "checkpoint_every"), positive=("log_every", "eval_every"))
        if self.beta is not None and not self.beta > 0:
            raise ValueError(f"RewardTrainConfig.beta must be > 0 (or None: the objective's default), got {self.beta}")
        if self.objective not in OBJECTIVES:
            raise ValueError(f"unknown objective {self.objective!r}; valid objectives: {', '.join(OBJECTIVES)}")
        if self.trainable not in TRAINABLE:
            raise ValueError(f"unknown trainable {self.trainable!r}; valid: {', '.join(TRAINABLE)}")
        if self.lora is not None and self.trainable != "all":
            raise ValueError(f"trainable={self.trainable!r} freezes the backbone, so its lora adapters would not train; "
                             "use trainable='all' with lora")

    @property
    def loss_beta(self) -> float:
        return self.beta if self.beta is not None else {"bt": 1.0, "gpm": 0.1}[self.objective]


def make_optimizer(config: RewardTrainConfig) -> optax.GradientTransformation:
    """``config.optimizer`` (``alignment.training.optimizers``, the RL learner's too) over ``num_steps``."""
    return config.optimizer.make(config.num_steps)


def sequence_inputs(ids: jax.Array, mask: jax.Array) -> tuple[jax.Array, jax.Array, jax.Array]:
    """Decoder inputs of padded rows: ``(tokens, positions, kv_mask)``; positions count real tokens."""
    return ids, positions_from_mask(mask), mask > 0


def _both_sides(batch: RewardBatch) -> tuple[jax.Array, jax.Array, jax.Array]:
    """Chosen rows then rejected rows as one ``[2B, L]`` decoder batch."""
    ids = jnp.concatenate([batch.chosen_ids, batch.rejected_ids])
    return sequence_inputs(ids, jnp.concatenate([batch.chosen_mask, batch.rejected_mask]))


def bt_margins(model: RewardModel, batch: RewardBatch, property_index: jax.Array) -> jax.Array:
    """m = r_p(chosen) - r_p(rejected), ``[B]``."""
    rewards = jnp.take(model(*_both_sides(batch)), property_index, axis=-1)
    chosen, rejected = jnp.split(rewards, 2)
    return chosen - rejected


def gpm_margins(model: GPMModel, batch: RewardBatch, property_index: jax.Array) -> jax.Array:
    """m = s(chosen > rejected | x) with lambda(x) read at the chosen row's last prompt token."""
    del property_index  # a GPM judges one property
    prompt_last = jnp.concatenate([batch.chosen_prompt_last, batch.rejected_prompt_last])
    v, weights = model(*_both_sides(batch), prompt_last)
    v_chosen, v_rejected = jnp.split(v, 2)
    return gpm_score(v_chosen, v_rejected, jnp.split(weights, 2)[0])


MARGINS = {"bt": bt_margins, "gpm": gpm_margins}


def pair_loss(model, batch: RewardBatch, property_index: jax.Array, *, objective: str, beta: float):
    """Mean preference loss over the batch's valid pairs, and its metrics."""
    margin = MARGINS[objective](model, batch, property_index)
    weights = jnp.asarray(batch.valid, jnp.float32)
    count = jnp.maximum(weights.sum(), 1.0)
    loss = jnp.sum(weights * preference_loss(margin, batch.label, beta)) / count
    accuracy = jnp.sum(weights * preference_accuracy(margin, batch.label)) / count
    return loss, {"loss": loss, "accuracy": accuracy, "pairs": weights.sum()}


def place_batch(batch: RewardBatch, mesh: Mesh | None = None, rules=DEFAULT_RULES) -> RewardBatch:
    """Puts a host batch on the devices, sharded over the logical "batch" axis when there is a mesh."""
    if mesh is None:
        return jax.tree.map(jnp.asarray, batch)
    names = {1: ("batch",), 2: ("batch", "length")}
    return jax.tree.map(lambda x: jax.device_put(x, logical_sharding(mesh, names[x.ndim], rules, shape=x.shape)), batch)


@functools.cache
def _eval_step(objective: str, beta: float):
    return make_eval_step(_bind_loss(objective, beta))


@functools.cache
def _pair_accuracy_step(objective: str):
    @nnx.jit
    def accuracies(model, batch: RewardBatch, property_index: jax.Array) -> jax.Array:
        return preference_accuracy(MARGINS[objective](model, batch, property_index), batch.label)

    return accuracies


def _per_batch(step, model, batches, properties, mesh, rules) -> list[tuple[str, jax.Array, np.ndarray]]:
    """``(property, step(model, batch, head index), batch.valid)`` per batch, left on the devices."""
    properties = tuple(properties)
    results = []
    for name, batch in batches:
        if name not in properties:
            raise ValueError(f"unknown property {name!r}; this model judges: {', '.join(properties)}")
        with contextlib.nullcontext() if mesh is None else jax.set_mesh(mesh):
            results.append((name, step(model, place_batch(batch, mesh, rules), jnp.int32(properties.index(name))), batch.valid))
    return results


def pair_accuracies(
    model: RewardModel | GPMModel,
    batches: Iterable[tuple[str, RewardBatch]],
    *,
    objective: str,
    properties: Sequence[str] = ("reward",),
    mesh: Mesh | None = None,
    rules=DEFAULT_RULES,
) -> dict[str, np.ndarray]:
    """``{property: [pairs]}`` each valid pair's accuracy (1, 0, or 1/2 for a tied label), in the
    batches' order: paired data for comparing two models on the same pairs (e.g. McNemar's
    test); its mean is ``evaluate_pairs``' accuracy."""
    results = _per_batch(_pair_accuracy_step(objective), model, batches, properties, mesh, rules)
    out: dict[str, list[np.ndarray]] = {}
    for name, accuracy, valid in jax.device_get(results):
        out.setdefault(name, []).append(np.asarray(accuracy, np.float64)[np.asarray(valid, bool)])
    return {name: np.concatenate(parts) for name, parts in out.items()}


def evaluate_pairs(
    model: RewardModel | GPMModel,
    batches: Iterable[tuple[str, RewardBatch]],
    *,
    objective: str,
    properties: Sequence[str] = ("reward",),
    beta: float | None = None,
    mesh: Mesh | None = None,
    rules=DEFAULT_RULES,
) -> dict[str, float]:
    """Pair-weighted loss and accuracy of ``model`` per property (``"<property>/accuracy"``,
    ``"/loss"``, ``"/pairs"``) on ``(property, RewardBatch)`` batches, without a trainer (no
    optimizer state). ``properties`` names the model's heads in order (a GPM judges one);
    ``beta`` defaults as in ``RewardTrainConfig``. The per-batch metrics are fetched once, at the end.
    """
    beta = RewardTrainConfig(objective=objective, beta=beta).loss_beta
    results = _per_batch(_eval_step(objective, beta), model, batches, properties, mesh, rules)
    if not results:
        raise ValueError("evaluate() got no batches")
    totals: dict[str, np.ndarray] = {}
    for name, m, _ in jax.device_get(results):
        sums = totals.setdefault(name, np.zeros(3))
        sums += (m["loss"] * m["pairs"], m["accuracy"] * m["pairs"], m["pairs"])
    out = {}
    for name, (loss, accuracy, pairs) in totals.items():
        out.update({f"{name}/loss": loss / pairs, f"{name}/accuracy": accuracy / pairs, f"{name}/pairs": pairs})
    return out


class RewardModelTrainer:
    """Trains a ``RewardModel`` (Bradley-Terry) or ``GPMModel`` on ``(property, RewardBatch)`` streams.

    Args:
      model: the model to train, in place (already placed on ``mesh`` when one is given); with
        ``config.lora`` its backbone gets the adapters (``merged_model()`` folds them in).
      config: the objective and optimisation settings.
      properties: names of the properties, in head order (``RewardModel`` head p judges
        ``properties[p]``); a GPM judges exactly one.
      mesh: shard every batch over the logical "batch" axis of this mesh.
      workdir: where metrics (JSON lines + TensorBoard) and Orbax checkpoints go; ``close()``
        (or a ``with`` block) closes them.
    """

    def __init__(
        self,
        model: RewardModel | GPMModel,
        config: RewardTrainConfig,
        *,
        properties: Sequence[str] = ("reward",),
        mesh: Mesh | None = None,
        rules=DEFAULT_RULES,
        workdir: str | Path | None = None,
    ):
        if config.objective == "gpm" and len(properties) != 1:
            raise ValueError(f"a GPM judges one property; got {list(properties)}: train one GPM per property")
        self.model, self.config, self.properties = model, config, tuple(properties)
        self.mesh, self.rules = mesh, rules
        if config.lora is not None:
            lora.add_adapters(model.backbone, config.lora)
            if mesh is not None:
                shard_model(model, mesh, rules)  # the new adapters where their logical axes say
        self.wrt = TRAINABLE[config.trainable] if config.lora is None else lora.trainable(model)
        self.optimizer = nnx.Optimizer(model, make_optimizer(config), wrt=self.wrt)
        loss_fn = _bind_loss(config.objective, config.loss_beta)
        shardings = None if mesh is None else pin_to_mesh((self.model, self.optimizer), mesh)
        self._train_step = make_train_step(loss_fn, self.wrt, shardings)
        self.step = 0
        self.data_position = 0  # training batches consumed
        self._skip = 0  # batches of the next stream that a restored run had consumed
        self.workdir = None if workdir is None else Path(workdir)
        self.metrics = None if workdir is None else MetricsWriter(self.workdir)
        self.checkpoints = None if workdir is None else Checkpoints(self.workdir / "checkpoints")

    def property_index(self, name: str) -> int:
        if name not in self.properties:
            raise ValueError(f"unknown property {name!r}; this model judges: {', '.join(self.properties)}")
        return self.properties.index(name)

    def place(self, batch: RewardBatch) -> RewardBatch:
        """Puts a host batch on the devices, sharded over "batch" when there is a mesh."""
        return place_batch(batch, self.mesh, self.rules)

    def train_step(self, batch: RewardBatch, property_name: str | None = None) -> dict[str, jax.Array]:
        """One optimizer step on one batch of ``property_name`` (default: the only property).

        Returns the step's metrics as device scalars (no host synchronisation).
        """
        index = jnp.int32(self.property_index(property_name or self.properties[0]))
        metrics = self._run(self._train_step, self.model, self.optimizer, self.place(batch), index)
        self.step += 1
        self.data_position += 1
        return metrics

    def evaluate(self, batches: Iterable[tuple[str, RewardBatch]]) -> dict[str, float]:
        """Pair-weighted loss and accuracy per property (``"<property>/accuracy"``, ...).

        The per-batch metrics are fetched from the devices once, at the end (``evaluate_pairs``).
        """
        return evaluate_pairs(self.model, batches, objective=self.config.objective, properties=self.properties,
                              beta=self.config.loss_beta, mesh=self.mesh, rules=self.rules)

    def fit(
        self,
        batches: Iterable[tuple[str, RewardBatch]],
        eval_batches: Callable[[], Iterable[tuple[str, RewardBatch]]] | None = None,
        *,
        until: int | None = None,
        progress: bool = True,
    ) -> dict[str, float]:
        """Trains up to step ``until`` (default and at most ``config.num_steps``, where the schedule
        ends); returns the last evaluation metrics, or the last logged training metrics.

        After ``restore`` the first ``data_position`` batches of ``batches`` are skipped (drawn and
        dropped). A trainer may fit again, e.g. in stages: nothing is closed here (see ``close``).
        """
        c = self.config
        until = c.num_steps if until is None else until
        if not self.step <= until <= c.num_steps:
            raise ValueError(f"fit(until={until}) needs step {self.step} <= until <= num_steps {c.num_steps}")
        batches = iter(batches)
        for _ in range(self._skip):
            if next(batches, None) is None:
                raise ValueError(f"the training batches ran out while skipping the {self._skip} a restored run had consumed")
        self._skip = 0
        result: dict[str, float] = {}
        bar = tqdm(total=until, initial=self.step, disable=not progress, desc="reward model")
        while self.step < until:
            try:
                name, batch = next(batches)
            except StopIteration:
                raise ValueError(f"the training batches ran out at step {self.step} of {until}") from None
            metrics = self.train_step(batch, name)
            bar.update(1)
            if self.step % c.log_every == 0 or self.step == until:
                result = {k: float(v) for k, v in jax.device_get(metrics).items()}
                bar.set_postfix(loss=f"{result['loss']:.3f}", acc=f"{result['accuracy']:.3f}")
                self._log(result, "train")
            if eval_batches is not None and (self.step % c.eval_every == 0 or self.step == until):
                result = self.evaluate(eval_batches())
                self._log(result, "eval")
            if self.checkpoints is not None and c.checkpoint_every and self.step % c.checkpoint_every == 0:
                self.save()
        bar.close()
        if self.checkpoints is not None and self.checkpoints.latest_step != self.step:
            self.save(wait=True)
        return result

    def merged_model(self) -> RewardModel | GPMModel:
        """The model with its backbone's LoRA adapters merged into the weights (a plain model on
        the same arrays otherwise); the model itself without ``config.lora``."""
        if self.config.lora is None:
            return self.model
        plain = nnx.clone(self.model)
        plain.backbone = lora.merged(self.model.backbone)
        return plain

    def _state(self) -> dict:
        """What a checkpoint holds: the trained parameters (with LoRA: adapters and heads) and the optimizer."""
        return {"model": nnx.state(self.model, self.wrt), "optimizer": nnx.state(self.optimizer)}

    def save(self, *, wait: bool = False) -> None:
        """Checkpoints model, optimizer, step and data position (``wait``: until the files are complete)."""
        meta = {"step": self.step, "data_position": self.data_position}
        self._checkpoints().save(self.step, self._state(), meta, wait=wait)

    def restore(self, step: int | None = None) -> int:
        """Loads a checkpoint (default: the latest) onto the state's current placement; returns its
        step. The next ``fit`` skips the batches that run had consumed (module docstring)."""
        abstract = jax.tree.map(lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=x.sharding), self._state())
        restored, meta = self._checkpoints().restore(abstract, step)
        nnx.update(self.model, restored["model"])
        nnx.update(self.optimizer, restored["optimizer"])
        self.step, self.data_position = meta["step"], meta["data_position"]
        self._skip = self.data_position
        return self.step

    def close(self) -> None:
        """Waits for pending checkpoints and closes the checkpoint manager and metrics files."""
        if self.checkpoints is not None:
            self.checkpoints.close()
        if self.metrics is not None:
            self.metrics.close()

    def __enter__(self) -> "RewardModelTrainer":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def _checkpoints(self) -> Checkpoints:
        if self.checkpoints is None:
            raise ValueError("this trainer has no workdir, so it has no checkpoints: pass workdir= to RewardModelTrainer")
        return self.checkpoints

    def _run(self, fn, *args) -> dict[str, jax.Array]:
        """Runs a compiled step (under the mesh, if any); its metrics stay on the devices."""
        with contextlib.nullcontext() if self.mesh is None else jax.set_mesh(self.mesh):
            return fn(*args)

    def _log(self, metrics: dict[str, float], prefix: str) -> None:
        if self.metrics is not None:
            self.metrics.write(self.step, metrics, prefix)


def _bind_loss(objective: str, beta: float):
    def loss_fn(model, batch, property_index):
        return pair_loss(model, batch, property_index, objective=objective, beta=beta)

    return loss_fn
