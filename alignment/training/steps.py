"""The one jitted optimizer step that every trainer shares.

``make_train_step(loss_fn, wrt)`` turns ``loss_fn(model, *batch) -> (loss, metrics)`` into
``step(model, optimizer, *batch) -> metrics``: one compiled program that differentiates the
parameters selected by the filter ``wrt`` (everything else, e.g. a frozen backbone, is a
constant, so XLA skips its backward pass) and applies the optimizer update in place.
"""

from __future__ import annotations

from collections.abc import Callable

import jax
import optax
from flax import nnx

LossFn = Callable[..., tuple[jax.Array, dict[str, jax.Array]]]


def make_train_step(
    loss_fn: LossFn, wrt: nnx.filterlib.Filter = nnx.Param, state_shardings: nnx.State | None = None
) -> Callable[..., dict[str, jax.Array]]:
    """``step(model, optimizer, *batch)``; metrics gain ``grad_norm``.

    ``state_shardings`` (the shardings of ``nnx.state((model, optimizer))``) pins the updated
    state to the placement it came in with, so that every step reuses one compiled program.
    """

    @nnx.jit(donate_argnums=(0, 1))
    def step(model: nnx.Module, optimizer: nnx.Optimizer, *batch) -> dict[str, jax.Array]:
        grad_fn = nnx.value_and_grad(loss_fn, argnums=nnx.DiffState(0, wrt), has_aux=True)
        (_, metrics), grads = grad_fn(model, *batch)
        optimizer.update(model, grads)
        if state_shardings is not None:
            state = nnx.state((model, optimizer))
            nnx.update((model, optimizer), jax.lax.with_sharding_constraint(state, state_shardings))
        return {**metrics, "grad_norm": optax.tree.norm(grads)}

    return step


def make_eval_step(loss_fn: LossFn) -> Callable[..., dict[str, jax.Array]]:
    """``evaluate(model, *batch) -> metrics`` without gradients."""

    @nnx.jit
    def evaluate(model: nnx.Module, *batch) -> dict[str, jax.Array]:
        return loss_fn(model, *batch)[1]

    return evaluate
