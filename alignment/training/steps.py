"""The one jitted optimizer step that every trainer shares.

``make_train_step(loss_fn, wrt)`` turns ``loss_fn(model, batch, *args) -> (loss, metrics)`` into
``step(model, optimizer, batch, *args) -> metrics``: one compiled program that differentiates the
parameters selected by the filter ``wrt`` (everything else, e.g. a frozen backbone, is a
constant, so XLA skips its backward pass) and applies the optimizer update in place.

Gradient accumulation: with ``microbatches=M`` the leading axis of every leaf of ``batch`` is
split into M equal microbatches, run one after another inside the program (a ``lax.scan``, so
activation memory is that of one microbatch) and the optimizer steps once. ``args`` are shared by
all microbatches. The metrics are the means over the microbatches; the loss and the gradients
are their means (``reduction="mean"``: each microbatch's loss is a mean over its own rows) or
their sums (``"sum"``: each microbatch's loss is already its share of the whole batch's, as the
RL learner's per-token weights normalised over the minibatch make it). The step's metrics hold
the loss as ``loss`` and the gradients' global norm as ``grad_norm``.
"""

from __future__ import annotations

from collections.abc import Callable

import jax
import optax
from flax import nnx
from jax.sharding import Mesh, NamedSharding, PartitionSpec

LossFn = Callable[..., tuple[jax.Array, dict[str, jax.Array]]]


def make_train_step(
    loss_fn: LossFn, wrt: nnx.filterlib.Filter = nnx.Param, state_shardings: nnx.State | None = None, microbatches: int = 1,
    reduction: str = "mean",
) -> Callable[..., dict[str, jax.Array]]:
    """``step(model, optimizer, batch, *args)``; metrics gain ``loss`` and ``grad_norm``.

    ``state_shardings`` (the shardings of ``nnx.state((model, optimizer))``) pins the updated
    state to the placement it came in with, so that every step reuses one compiled program;
    ``step.num_compilations`` counts the programs traced. ``step.lower(model, optimizer, batch,
    *args)`` traces without compiling; abstract models (``nnx.eval_shape``) and
    ``jax.ShapeDtypeStruct`` inputs are enough.
    """
    if microbatches < 1:
        raise ValueError(f"microbatches must be >= 1, got {microbatches}")
    if reduction not in ("mean", "sum"):
        raise ValueError(f"unknown reduction {reduction!r}; valid: mean, sum")

    @nnx.jit(donate_argnums=(0, 1))
    def step(model: nnx.Module, optimizer: nnx.Optimizer, batch, *args) -> dict[str, jax.Array]:
        counted.num_compilations += 1
        grad_fn = nnx.value_and_grad(loss_fn, argnums=nnx.DiffState(0, wrt), has_aux=True)
        if microbatches == 1:
            (loss, metrics), grads = grad_fn(model, batch, *args)
        else:
            loss, grads, metrics = _accumulate(grad_fn, model, _split(batch, microbatches), args, reduction)
        optimizer.update(model, grads)
        if state_shardings is not None:
            state = nnx.state((model, optimizer))
            nnx.update((model, optimizer), jax.lax.with_sharding_constraint(state, state_shardings))
        return {**metrics, "loss": loss, "grad_norm": optax.tree.norm(grads)}

    def counted(*args):
        return step(*args)

    counted.num_compilations = 0
    counted.lower = step.lower
    return counted


def _split(batch, microbatches: int):
    """Reshapes each leaf ``[B, ...]`` to ``[M, B / M, ...]``."""

    def split(x):
        if x.shape[0] % microbatches:
            raise ValueError(f"batch size {x.shape[0]} is not divisible by microbatches={microbatches}")
        return x.reshape(microbatches, x.shape[0] // microbatches, *x.shape[1:])

    return jax.tree.map(split, batch)


def _accumulate(grad_fn, model, microbatched, args, reduction: str):
    """The loss and gradients of ``grad_fn`` over the leading (microbatch) axis, combined by
    ``reduction`` ("mean" or "sum"), and the mean metrics."""
    graphdef, state = nnx.split(model)

    def gradients(state, microbatch):
        (loss, metrics), grads = grad_fn(nnx.merge(graphdef, state), microbatch, *args)
        return loss, grads, metrics

    def body(carry, microbatch):
        # The state rides in the carry: NNX cannot read variables of the outer trace inside the scan.
        state, totals = carry
        return (state, jax.tree.map(lambda t, x: t + x, totals, gradients(state, microbatch))), None

    first = gradients(state, jax.tree.map(lambda x: x[0], microbatched))
    (_, totals), _ = jax.lax.scan(body, (state, first), jax.tree.map(lambda x: x[1:], microbatched))
    count = jax.tree.leaves(microbatched)[0].shape[0]
    loss, grads, metrics = totals
    if reduction == "mean":
        loss, grads = jax.tree.map(lambda t: t / count, (loss, grads))
    return loss, grads, jax.tree.map(lambda t: t / count, metrics)


def pin_to_mesh(nodes, mesh: Mesh) -> nnx.State:
    """Replicates the leaves of ``nnx.state(nodes)`` that live on one device (e.g. an optimizer's
    step count) over ``mesh``, in place, and returns the shardings of the whole state: the
    ``state_shardings`` of ``make_train_step``."""
    state = nnx.state(nodes)
    replicated = NamedSharding(mesh, PartitionSpec())
    shardings = jax.tree.map(lambda x: x.sharding if isinstance(x.sharding, NamedSharding) else replicated, state)
    nnx.update(nodes, jax.device_put(state, shardings))
    return shardings


def make_eval_step(loss_fn: LossFn) -> Callable[..., dict[str, jax.Array]]:
    """``evaluate(model, *batch) -> metrics`` without gradients."""

    @nnx.jit
    def evaluate(model: nnx.Module, *batch) -> dict[str, jax.Array]:
        return loss_fn(model, *batch)[1]

    return evaluate
