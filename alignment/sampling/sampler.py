"""Batched autoregressive sampling with a KV cache: one compiled program per shape bucket.

The model is any Flax NNX module with the decoder interface of ``alignment.models.decoder``:
``init_cache(batch, max_length)``, ``hidden_states(tokens, positions, kv_mask, cache,
cache_index, layer_weights) -> (hidden, cache)`` and ``logits(hidden)`` (the two halves of
``model(...)``, so that only the last column's logits are computed), and, for unrolled decoding,
``layers.unstacked_weights()``. One call of ``Sampler`` runs, inside a single
``jax.jit`` program:

1. prefill: the left-padded prompts ``[B, P]`` in one forward pass, writing cache slots
   ``0 .. P-1``; response token 0 is sampled from the logits of column ``P - 1``;
2. decode: a ``jax.lax.while_loop`` over steps ``i = 1 .. N-1`` feeding token ``i-1`` at cache
   slot ``P + i - 1`` (position ``len_b + i - 1``, ``len_b`` = the prompt's real length) and
   sampling token ``i``. It stops early once every row has emitted an EOS id.

Decode steps run the layers one of two ways (``SamplerConfig.decode_layers``): "scan" over the
stacked weights, as the prefill does, or "unrolled" over per-layer copies made once per call
(``model.layers.unstacked_weights()``). On XLA:CPU a matmul that reads a slice of the stacked
weights copies the slice first, so "scan" moves every weight twice per step while "unrolled"
copies them once per call. On SmolLM2-135M (``benchmarks/sampling_smollm2.py --decode-layers
...``: batch 8, 64-token prompts, 64 greedy tokens, this project's 2-core CPU) "unrolled" took
4.3 s per call against 6.1 s for "scan", at the cost of a second copy of the layer weights during
the call and a compile time that grows with depth (first call 13 s against 9 s for 30 layers).
"auto" (the default) picks "unrolled" on CPU and "scan" on accelerators, where the copy would
cost scarce device memory.

Response token ``i`` of row ``b`` is *valid* iff no EOS appeared among its tokens ``0 .. i-1``:
the EOS token itself is the last valid token, later ones are ``pad_id`` with mask ``False`` and
log-probabilities 0. The cache holds ``P + N - 1`` slots; key slot ``s`` is visible iff it holds a
real prompt token or a response token (causality hides the future ones).

Randomness: column ``i`` is drawn with ``jax.random.fold_in(key, i)`` (one draw for the whole
batch), so the output is a deterministic function of the key and the padded batch.

Sharding: give a ``mesh`` and shard the model's parameters (``alignment.models.partitioning``);
the batch then splits over the mesh axes of the logical "batch" axis (("data", "fsdp") by
default), the KV cache by its logical axes, and the model's own constraints apply because the
program runs under ``jax.set_mesh(mesh)``. The mesh may span several processes
(``alignment.parallel.distributed``): each process then passes the same prompts and key and
holds its own shards of the output (``to_host`` gathers them).
"""

from __future__ import annotations

import contextlib
import dataclasses
import math

import flax.struct
import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx
from jax.sharding import Mesh

from alignment.models.decoder import CACHE_AXES
from alignment.models.layers import positions_from_mask
from alignment.parallel import DEFAULT_RULES, from_host, logical_sharding, logical_to_mesh_axes, with_logical_constraint
from alignment.sampling.batching import bucket_size, check_buckets, left_pad, powers_of_two, token_lists
from alignment.sampling.filters import SamplingParams, sample_logits

DECODE_LAYERS = ("auto", "scan", "unrolled")


@dataclasses.dataclass(frozen=True)
class SamplerConfig:
    """Static configuration of a sampler: changing any field compiles new programs.

    Attributes:
      max_new_tokens: N, response tokens per prompt (the loop may stop earlier on EOS).
      eos_ids: token ids that end a response (one or several; empty: always N tokens).
      pad_id: id written in padding slots (prompt left padding, after EOS, batch padding).
      sampling: temperature / top-k / top-p / greedy, see ``SamplingParams``.
      prompt_buckets: allowed padded prompt lengths P (a prompt is padded to the smallest
        bucket that holds it).
      batch_buckets: allowed padded batch sizes; with a mesh, the chosen bucket must also be a
        multiple of the number of batch shards.
      decode_layers: "scan", "unrolled" or "auto", how decode steps run the layers (see the
        module docstring).
    """

    max_new_tokens: int
    eos_ids: tuple[int, ...] = ()
    pad_id: int = 0
    sampling: SamplingParams = SamplingParams()
    prompt_buckets: tuple[int, ...] = powers_of_two(16, 8192)
    batch_buckets: tuple[int, ...] = powers_of_two(1, 4096)
    decode_layers: str = "auto"

    def __post_init__(self):
        if isinstance(self.max_new_tokens, bool) or not isinstance(self.max_new_tokens, int) or self.max_new_tokens < 1:
            raise ValueError(f"max_new_tokens must be a positive int; got max_new_tokens={self.max_new_tokens!r}")
        object.__setattr__(self, "eos_ids", tuple(int(i) for i in np.atleast_1d(self.eos_ids)))
        if not isinstance(self.sampling, SamplingParams):
            raise ValueError(f"sampling must be a SamplingParams; got sampling={self.sampling!r}")
        object.__setattr__(self, "prompt_buckets", check_buckets(self.prompt_buckets, "prompt_buckets"))
        object.__setattr__(self, "batch_buckets", check_buckets(self.batch_buckets, "batch_buckets"))
        if self.decode_layers not in DECODE_LAYERS:
            raise ValueError(f"decode_layers must be one of {DECODE_LAYERS}; got decode_layers={self.decode_layers!r}")

    def unrolled_decode(self, platform: str) -> bool:
        """Whether decode steps loop over per-layer weight copies on this device platform."""
        return self.decode_layers == "unrolled" or (self.decode_layers == "auto" and platform == "cpu")


@flax.struct.dataclass
class SampleOutput:
    """Prompts and responses side by side, ``[B, L]`` with ``L = P + N`` (P = prompt bucket).

    Columns ``0 .. P-1`` hold the left-padded prompt, columns ``P .. P+N-1`` the response.

    Attributes:
      tokens: int32 token ids (``pad_id`` wherever a mask is ``False``).
      prompt_mask: bool, real prompt tokens.
      response_mask: bool, response tokens up to and including the first EOS.
      sampling_logprobs: float32, ``log pi_sample(token)`` where ``pi_sample`` is the
        distribution actually sampled from (after temperature, top-k and top-p; 0 for greedy);
        0 outside ``response_mask``.
      model_logprobs: float32, ``log softmax(logits)[token]``: the unmodified model at
        temperature 1 (what an RL learner's ratio needs); 0 outside ``response_mask``.
      prompt_length: P, the static prompt bucket.
    """

    tokens: jax.Array
    prompt_mask: jax.Array
    response_mask: jax.Array
    sampling_logprobs: jax.Array
    model_logprobs: jax.Array
    prompt_length: int = flax.struct.field(pytree_node=False)

    @property
    def response_tokens(self) -> jax.Array:
        """``[B, N]`` the response columns of ``tokens``."""
        return self.tokens[:, self.prompt_length :]

    @property
    def response_lengths(self) -> jax.Array:
        """``[B]`` valid response tokens per row (the EOS included)."""
        return self.response_mask.sum(axis=1)

    @property
    def positions(self) -> jax.Array:
        """``[B, L]`` int32 RoPE positions used while sampling: 0, 1, ... over the real tokens."""
        return positions_from_mask(self.prompt_mask | self.response_mask)


@flax.struct.dataclass
class _DecodeState:
    """The ``while_loop`` carry: response buffers ``[B, N]`` filled up to column ``step``."""

    step: jax.Array
    tokens: jax.Array
    mask: jax.Array
    sampling_logprobs: jax.Array
    model_logprobs: jax.Array
    done: jax.Array  # [B] the row has emitted an EOS (or is batch padding)
    cache: object


class Sampler:
    """Samples responses for a batch of prompts; see the module docstring for the algorithm.

    ``Sampler(config, mesh)(model, prompts, key)`` returns a ``SampleOutput`` for the real
    prompts (batch padding removed). ``num_compilations`` counts the traced programs.
    """

    def __init__(self, config: SamplerConfig, mesh: Mesh | None = None, rules=DEFAULT_RULES):
        self.config = config
        self.mesh = mesh
        self.rules = tuple(rules)
        self.num_compilations = 0
        self._generate = jax.jit(self._trace_generate, static_argnums=0)

    def __call__(self, model: nnx.Module, prompts, key: jax.Array | None, lengths=None) -> SampleOutput:
        """Samples ``max_new_tokens`` per prompt.

        Args:
          model: the decoder (its parameters may be sharded over ``self.mesh``).
          prompts: token-id sequences of any lengths, or a right-padded ``[B, T]`` int array
            together with ``lengths`` ``[B]``.
          key: a ``jax.random`` key (deterministic output for a given key); may be ``None``
            only for greedy decoding.
        """
        cfg = self.config
        if key is None and not cfg.sampling.is_greedy:
            raise ValueError("key is required unless the sampling is greedy (temperature=0 or greedy=True)")
        rows = token_lists(prompts, lengths)
        batch, length = self._padded_shape(len(rows), max(map(len, rows)))
        tokens, mask, active = left_pad(rows, batch, length, cfg.pad_id)
        inputs = (tokens, mask, active)
        if self.mesh is not None:
            inputs = tuple(from_host(x, self._batch_sharding(x)) for x in inputs)
        key = jax.random.key(0) if key is None else key
        graphdef, state = nnx.split(model)
        with self._mesh_context():
            out = self._generate(graphdef, state, *inputs, key)
        return out if len(rows) == batch else jax.tree.map(lambda x: x[: len(rows)], out)

    def lower(self, model: nnx.Module, num_prompts: int, prompt_length: int) -> jax.stages.Lowered:
        """The program ``__call__`` runs for ``num_prompts`` prompts of up to ``prompt_length``
        tokens, lowered (traced, not compiled).

        ``model`` may be abstract: ``nnx.eval_shape`` with ``ShapeDtypeStruct`` parameters that
        carry their shardings (``alignment.models.partitioning.abstract_state``), so a model of
        any size lowers without allocating its weights.
        """
        batch, length = self._padded_shape(num_prompts, prompt_length)
        inputs = [jax.ShapeDtypeStruct((batch, length), jnp.int32), jax.ShapeDtypeStruct((batch, length), bool),
                  jax.ShapeDtypeStruct((batch,), bool)]
        if self.mesh is not None:
            inputs = [x.update(sharding=self._batch_sharding(x)) for x in inputs]
        graphdef, state = nnx.split(model)
        with self._mesh_context():
            return self._generate.lower(graphdef, state, *inputs, jax.eval_shape(jax.random.key, 0))

    def _padded_shape(self, num_prompts: int, longest: int) -> tuple[int, int]:
        """The (batch, prompt length) buckets that hold ``num_prompts`` prompts of up to ``longest`` tokens."""
        cfg = self.config
        batch = bucket_size(num_prompts, cfg.batch_buckets, "batch_buckets", multiple_of=self._batch_shards())
        return batch, bucket_size(longest, cfg.prompt_buckets, "prompt_buckets")

    def _mesh_context(self):
        return contextlib.nullcontext() if self.mesh is None else jax.set_mesh(self.mesh)

    def _batch_shards(self) -> int:
        """How many ways the logical "batch" axis splits on the mesh (1 without a mesh)."""
        if self.mesh is None:
            return 1
        axes = logical_to_mesh_axes(("batch",), self.rules)[0]
        axes = () if axes is None else (axes,) if isinstance(axes, str) else axes
        return math.prod(self.mesh.shape[a] for a in axes)

    def _batch_sharding(self, x: np.ndarray):
        names = ("batch", "length")[: x.ndim]
        return logical_sharding(self.mesh, names, self.rules, shape=x.shape)

    def _trace_generate(self, graphdef, state, prompt_tokens, prompt_mask, active, key) -> SampleOutput:
        """The compiled program (runs once per new shape bucket, at trace time)."""
        self.num_compilations += 1
        cfg = self.config
        batch, prompt_length = prompt_tokens.shape
        n = cfg.max_new_tokens

        model = nnx.merge(graphdef, state)

        def forward(tokens, positions, cache, index, layer_weights=None):
            """Logits ``[B, V]`` of the last column only (the prefill skips the other P-1 columns)."""
            hidden, cache = model.hidden_states(tokens, positions, kv_mask, cache, index, layer_weights)
            return model.logits(hidden[:, -1:])[:, 0], cache

        kv_mask = jnp.concatenate([prompt_mask, jnp.ones((batch, n - 1), bool)], axis=1)
        cache = self._constrain_cache(model.init_cache(batch, prompt_length + n - 1))
        prompt_positions = positions_from_mask(prompt_mask)
        logits, cache = forward(prompt_tokens, prompt_positions, cache, 0)
        prompt_lengths = prompt_mask.sum(axis=1).astype(jnp.int32)
        eos_ids = jnp.asarray(cfg.eos_ids, jnp.int32)
        platform = (self.mesh.devices.flat[0] if self.mesh is not None else jax.devices()[0]).platform
        decode_weights = model.layers.unstacked_weights(model.lora) if cfg.unrolled_decode(platform) else None

        def emit(s: _DecodeState, logits) -> _DecodeState:
            """Samples response column ``s.step`` from ``logits [B, V]``."""
            token, sampling_lp, model_lp = sample_logits(jax.random.fold_in(key, s.step), logits, cfg.sampling)
            alive = ~s.done
            token = jnp.where(alive, token, cfg.pad_id)
            put = lambda buf, col: jax.lax.dynamic_update_index_in_dim(buf, col.astype(buf.dtype), s.step, axis=1)
            return s.replace(
                step=s.step + 1,
                tokens=put(s.tokens, token),
                mask=put(s.mask, alive),
                sampling_logprobs=put(s.sampling_logprobs, jnp.where(alive, sampling_lp, 0.0)),
                model_logprobs=put(s.model_logprobs, jnp.where(alive, model_lp, 0.0)),
                done=s.done | (alive & (token[:, None] == eos_ids).any(axis=1)),
            )

        def decode_step(s: _DecodeState) -> _DecodeState:
            previous = jax.lax.dynamic_index_in_dim(s.tokens, s.step - 1, axis=1, keepdims=True)
            positions = (prompt_lengths + s.step - 1)[:, None]
            logits, cache = forward(previous, positions, s.cache, prompt_length + s.step - 1, decode_weights)
            return emit(s.replace(cache=cache), logits)

        zeros = jnp.zeros((batch, n), jnp.float32)
        start = _DecodeState(
            step=jnp.zeros((), jnp.int32),
            tokens=jnp.full((batch, n), cfg.pad_id, jnp.int32),
            mask=jnp.zeros((batch, n), bool),
            sampling_logprobs=zeros,
            model_logprobs=zeros,
            done=~active,
            cache=cache,
        )
        s = jax.lax.while_loop(lambda s: (s.step < n) & ~s.done.all(), decode_step, emit(start, logits))
        no_response = jnp.zeros((batch, n), bool)
        no_prompt = jnp.zeros((batch, prompt_length), bool)
        return SampleOutput(
            tokens=jnp.concatenate([prompt_tokens, s.tokens], axis=1),
            prompt_mask=jnp.concatenate([prompt_mask, no_response], axis=1),
            response_mask=jnp.concatenate([no_prompt, s.mask], axis=1),
            sampling_logprobs=jnp.concatenate([no_prompt.astype(jnp.float32), s.sampling_logprobs], axis=1),
            model_logprobs=jnp.concatenate([no_prompt.astype(jnp.float32), s.model_logprobs], axis=1),
            prompt_length=prompt_length,
        )

    def _constrain_cache(self, cache):
        """Shards the cache leaves by ``CACHE_AXES`` when a mesh is set (no-op otherwise)."""
        return jax.tree.map(lambda x: with_logical_constraint(x, CACHE_AXES, self.rules), cache)
