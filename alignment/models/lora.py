"""Low-rank adapters (LoRA) on the decoder's attention and MLP projections.

Hu et al., "LoRA: Low-Rank Adaptation of Large Language Models" (arXiv 2106.09685). A target
projection ``y = x W`` (``W [d_in, d_out]``) becomes

    y = x W + (alpha / r) (x A) B,    A [d_in, r],  B [r, d_out]

with ``W`` frozen, ``A`` drawn uniformly from ``+-1/sqrt(d_in)`` (peft's default) and ``B = 0``,
so a fresh adapter leaves the model exactly unchanged. The adapters are ``LoRAParam``s (an
``nnx.Param`` subtype) stacked along the decoder's "layers" axis next to the weight they adapt,
with the weight's logical axes and a replicated "lora_rank" axis, so the rules table shards
them like the rest of the model.

* ``add_adapters(model, config)`` adds them to a ``Decoder`` in place.
* ``trainable(module)`` is the filter of what a trainer updates: every ``LoRAParam`` and every
  parameter outside a decoder with adapters (a reward or value head); the base weights stay.
  The optimizer state and the checkpoints then hold only these.
* ``adapters_off(model)`` is the base model (the same arrays, no copy): the RL learner's
  reference policy pi_0 when the policy has adapters.
* ``merged(model)`` is a plain ``Decoder`` with ``W + (alpha / r) A B`` (export).
"""

from __future__ import annotations

import dataclasses
import math

import jax
import jax.numpy as jnp
from flax import nnx

from alignment import nested

PROJECTIONS = ("q", "k", "v", "o", "gate", "up", "down")  # the decoder's projections, as ``LayerStack`` names them


class LoRAParam(nnx.Param):
    """An adapter weight, ``A`` or ``B`` (an ``nnx.Param``: saved, sharded and restored alike)."""


def lora_names(projection: str) -> tuple[str, str]:
    """The ``LayerStack`` attributes of the ``A`` and ``B`` of ``projection``."""
    return f"{projection}_lora_a", f"{projection}_lora_b"


@dataclasses.dataclass(frozen=True)
class LoRAConfig:
    """Which projections get adapters and their size.

    Attributes:
      rank: r, the inner width of ``A B``.
      alpha: the adapters' output is scaled by ``alpha / rank``.
      targets: projections among "q", "k", "v", "o" (attention) and "gate", "up", "down" (MLP).
      seed: draws ``A`` (``B`` starts at zero).
    """

    rank: int = 16
    alpha: float = 32.0
    targets: tuple[str, ...] = PROJECTIONS
    seed: int = 0

    def __post_init__(self):
        nested.check_fields(self, positive=("rank", "alpha"))
        object.__setattr__(self, "targets", tuple(self.targets))
        unknown = [t for t in self.targets if t not in PROJECTIONS]
        if unknown or not self.targets or len(set(self.targets)) != len(self.targets):
            raise ValueError(f"LoRAConfig.targets must be distinct names among {', '.join(PROJECTIONS)}; got {self.targets}")

    @property
    def scale(self) -> float:
        return self.alpha / self.rank


def add_adapters(model, config: LoRAConfig):
    """Adds ``A`` and ``B`` for each of ``config.targets`` to the ``Decoder`` ``model`` (in place;
    returns it). Place the model on a mesh afterwards (``shard_model``): the adapters then go
    where their logical axes say."""
    if model.lora is not None:
        raise ValueError(f"the decoder already has adapters ({model.lora}); add them once")
    layers = model.layers
    key = jax.random.key(config.seed)
    for index, name in enumerate(config.targets):
        weight = getattr(layers, name)
        axes = weight.get_metadata()["out_sharding"]
        num_layers, d_in = weight.shape[0], _fan_in(name, weight.shape)
        in_shape, out_shape = (weight.shape[1:2], weight.shape[2:]) if name != "o" else (weight.shape[1:3], weight.shape[3:])
        in_axes, out_axes = (axes[1:2], axes[2:]) if name != "o" else (axes[1:3], axes[3:])
        bound = 1.0 / math.sqrt(d_in)
        a = jax.random.uniform(jax.random.fold_in(key, index), (num_layers, *in_shape, config.rank), weight.dtype, -bound, bound)
        b = jnp.zeros((num_layers, config.rank, *out_shape), weight.dtype)
        a_name, b_name = lora_names(name)
        setattr(layers, a_name, LoRAParam(a, out_sharding=("layers", *in_axes, "lora_rank"), eager_sharding=False))
        setattr(layers, b_name, LoRAParam(b, out_sharding=("layers", "lora_rank", *out_axes), eager_sharding=False))
    model.lora = config
    return model


def _fan_in(name: str, shape: tuple[int, ...]) -> int:
    return shape[1] * shape[2] if name == "o" else shape[1]


def adapters_off(model):
    """The base model of ``model``: a view on the same arrays that runs without the adapters."""
    view = nnx.clone(model) if model.lora is not None else model
    view.lora = None
    return view


def merged(model):
    """A plain ``Decoder`` (no adapters) with ``W + (alpha / r) A B`` in each adapted projection."""
    if model.lora is None:
        return model
    stacked = model.layers.weights()
    plain = nnx.eval_shape(lambda: type(model)(model.config, rngs=nnx.Rngs(0), rules=model.rules))
    graphdef, state = nnx.split(plain)
    values = nnx.to_pure_dict(nnx.state(model, nnx.Param))
    for name in model.lora.targets:
        a_name, b_name = lora_names(name)
        values["layers"][name] = merge_weight(stacked[name], stacked[a_name], stacked[b_name], model.lora.scale)
        del values["layers"][a_name], values["layers"][b_name]
    nnx.replace_by_pure_dict(state, values)
    return nnx.merge(graphdef, state)


def merge_weight(weight: jax.Array, a: jax.Array, b: jax.Array, scale: float) -> jax.Array:
    """``W + scale * A B`` of one projection: stacked (``W [L, *in, *out]``, ``A [L, *in, r]``,
    ``B [L, r, *out]``) or one layer's (without the leading L)."""
    lead = a.shape[: a.ndim + b.ndim - 2 - weight.ndim]  # (L,) or ()
    rank = a.shape[-1]
    delta = jnp.matmul(a.reshape(*lead, -1, rank), b.reshape(*lead, rank, -1), preferred_element_type=jnp.float32)
    return (weight.astype(jnp.float32) + scale * delta.reshape(weight.shape)).astype(weight.dtype)


def adapter_output(x: jax.Array, a: jax.Array, b: jax.Array, scale: float) -> jax.Array:
    """``scale * (x A) B`` for ``x [N, d_in]`` and one layer's ``A [*in, r]``, ``B [r, *out]``."""
    rank = a.shape[-1]
    down = jnp.dot(x, a.reshape(-1, rank), preferred_element_type=jnp.float32).astype(x.dtype)
    return (scale * jnp.dot(down, b.reshape(rank, -1), preferred_element_type=jnp.float32)).astype(x.dtype)


def trainable(module: nnx.Module) -> nnx.filterlib.Filter:
    """The filter of what a trainer of ``module`` updates: every ``LoRAParam``, and every
    ``nnx.Param`` outside the decoders that have adapters (heads). ``nnx.Param`` when no decoder
    in ``module`` has adapters."""
    frozen = tuple(tuple(path) for path, node in nnx.iter_graph(module) if isinstance(getattr(node, "lora", None), LoRAConfig))
    return AdaptersAndHeads(frozen) if frozen else nnx.Param


@dataclasses.dataclass(frozen=True)
class AdaptersAndHeads:
    """The filter ``trainable`` returns for a module with adapters: every ``LoRAParam``, and
    every ``nnx.Param`` outside the decoders at ``frozen`` (paths). Hashable, so that learners
    of equal modules share their update program (``alignment.rl.compiled``)."""

    frozen: tuple[tuple, ...]

    def __call__(self, path, variable) -> bool:
        if isinstance(variable, LoRAParam):
            return True
        return isinstance(variable, nnx.Param) and not any(tuple(path[: len(prefix)]) == prefix for prefix in self.frozen)
