"""The RL learner: a registered algorithm (PPO, RLOO, GRPO, Dr. GRPO, DAPO, GSPO, REINFORCE++)
on one utility, with a KL penalty to the base policy.

One ``Learner.train_step()``:

1. **sample**: G responses to each of ``prompts_per_step`` prompts from the policy (one compiled
   sampling program; the sampler also returns log pi_old of every token);
2. **score**: every reward function scores every response (``alignment.rl.scoring``); the
   utility ``U = Utility(rewards, r_ref)`` (``alignment.rl.utility``) is one number per
   response, and responses without EOS can be charged ``shaping.no_eos_penalty``;
3. **base-policy pass**: log pi_0 of every response token (and, with a critic, the values V(s_t));
4. **update**: the algorithm's advantages (``alignment.rl.algorithms``), then
   ``epochs x minibatches`` optimizer steps of one compiled program on its loss
   (``alignment.rl.programs``, where the formulas and the claim-1 diagnostics are).

The learner reads the algorithm's properties (critic, ratio, aggregation, group filtering),
never its name. The KL coefficient beta is fixed or adapted towards ``kl.target`` after each
step (``kl.py``).

Metrics stay on the device and are fetched every ``log_every`` steps (JSON lines, TensorBoard,
progress bar); each phase waits for its own results so that the step time splits by phase. A
non-finite reward, utility, loss or gradient skips that update (``optax.apply_if_finite``: the
parameters stay finite) and raises ``FloatingPointError`` naming the step and the source once
the step's flags are fetched, at the next sampling step's host transfer or at the end of
``run``. Checkpoints (Orbax) hold the policy and the value model (with ``config.lora``: their
adapters and heads alone), the optimizer, beta, the RNG key, the step and the prompt stream's
position, so a resumed run continues exactly.

The mesh may span several processes (``alignment.parallel.initialize``): every process runs
the same learner on the same prompts and seed; response tokens, rewards, metrics and flags are
gathered to every process (``alignment.parallel.to_host``), host data goes back through
``from_host``, only process 0 writes metrics and shows the progress bar, and every process
saves its shards of the checkpoints (``tests/test_multihost.py``: two processes match one
process with two devices).
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx
from jax.sharding import Mesh, NamedSharding, PartitionSpec
from tqdm.auto import tqdm

from alignment.models import lora
from alignment.models.decoder import Decoder
from alignment.models.heads import ValueModel
from alignment.models.loaders.checkpoint import save_params
from alignment.models.partitioning import shard_model
from alignment.models.tokenizer import Tokenizer
from alignment.parallel import DEFAULT_RULES, from_host, is_primary, logical_sharding, to_host
from alignment.rl import algorithms, compiled, kl
from alignment.rl.config import LearnerConfig
from alignment.rl.faults import NonFiniteGuard
from alignment.rl.programs import Trainable, UpdateBatch
from alignment.rl.reference import reference_matrix
from alignment.rl.rollout import PromptStream, sample_groups, trim
from alignment.rl.scoring import Chat, RewardFunction, score_all
from alignment.training import preemption
from alignment.training.checkpointing import Checkpoints
from alignment.training.metrics import SPIKE_WINDOW, MetricsWriter, gradient_spike
from alignment.training.steps import pin_to_mesh

class Learner:
    """Aligns ``policy`` to the utility of ``rewards`` with a KL penalty to ``base_policy``.

    Names: ``base_policy`` is the frozen pi_0; ``references`` are the reference rewards r_ref
    (one per prompt and property, from the reference stage, ``alignment.rl.reference``).

    Args:
      policy: the decoder to train (in place). With a ``mesh``, the policy, the base policy and the
        value model are moved to the shardings their logical axes give under ``rules``; reward
        models stay where their ``ModelReward`` put them.
      base_policy: the frozen base policy pi_0 (a separate copy of the initial weights); ``None``
        with ``config.lora``, whose pi_0 is the policy with its adapters off.
      tokenizer: the policy's tokenizer with its chat template and EOS id.
      rewards: reward functions (``alignment.rl.scoring``) that together score every property.
      prompts: the alignment prompts as chats (``[{"role": "user", "content": ...}]``).
      references: ``{property: r_ref [num_prompts]}`` (e.g. from the reference stage); needed
        by every transform but ``identity`` and, for every run, by the metrics that compare
        responses above and below r_ref.
      config: the ``LearnerConfig``.
      value_model: the critic of an algorithm that has one (PPO): a ``ValueModel`` with its own
        backbone, or one whose backbone is ``policy`` (a value head on the policy's hidden
        states). Ignored by the others.
      mesh, rules: where the batch and the programs run.
      workdir: metrics and checkpoints go here (``None``: neither).
      programs: the compiled programs it shares with other learners of equal shapes and
        configs (``alignment.rl.compiled``; default: the process's ``compiled.SHARED``; a fresh
        ``SharedPrograms()`` shares none).
    """

    def __init__(
        self,
        policy: Decoder,
        base_policy: Decoder | None,
        tokenizer: Tokenizer,
        rewards: Sequence[RewardFunction],
        prompts: Sequence[Chat],
        references: Mapping[str, np.ndarray] | None,
        config: LearnerConfig,
        *,
        value_model: ValueModel | None = None,
        mesh: Mesh | None = None,
        rules=DEFAULT_RULES,
        workdir: str | Path | None = None,
        programs: compiled.SharedPrograms | None = None,
    ):
        if base_policy is policy:
            raise ValueError("base_policy must be a separate copy of the policy's initial weights (the policy is trained in place)")
        if (base_policy is None) != (config.lora is not None):
            raise ValueError("base_policy is a copy of the policy's initial weights, needed without config.lora; with it, "
                             "pass base_policy=None (pi_0 is then the policy with its adapters off: no copy of the weights)")
        self.algorithm = config.algorithm_spec
        if self.algorithm.critic and value_model is None:
            raise ValueError(f"{config.algorithm} needs a value_model: a ValueModel with its own backbone or with backbone=policy")
        self.config, self.tokenizer, self.mesh, self.rules = config, tokenizer, mesh, tuple(rules)
        self.reward_fns = tuple(rewards)
        self.properties = tuple(p for fn in self.reward_fns for p in fn.properties)
        if len(set(self.properties)) != len(self.properties):
            raise ValueError(f"each property must be scored by one reward function; got {list(self.properties)}")
        self.prompts = [list(chat) for chat in prompts]
        self.prompt_ids = config.rollout.encode(tokenizer, self.prompts)
        self.references = reference_matrix(references, self.properties, len(self.prompts), config.utility)
        self.trainable = Trainable(policy, value_model if self.algorithm.critic else None)
        if config.lora is not None:
            self.trainable.add_adapters(config.lora)
        if mesh is not None:  # each model where the logical rules put its parameters (a no-op if already there)
            for model in [m for m in (self.trainable, base_policy) if m is not None]:
                shard_model(model, mesh, self.rules)
        # The update donates the trainable buffers: own copies keep arrays shared with other
        # modules (e.g. a base policy made by nnx.clone(policy)) alive.
        nnx.update(self.trainable, jax.tree.map(jnp.copy, nnx.state(self.trainable)))
        self.base_policy = base_policy
        self.wrt = lora.trainable(self.trainable)  # what the update changes: all parameters, or adapters and heads
        programs = compiled.SHARED if programs is None else programs
        self.optimizer = nnx.Optimizer(self.trainable, programs.optimizer(config), wrt=self.wrt)
        self.stream = PromptStream(len(self.prompts), config.seed)
        sampling = config.rollout.sampler_config((tokenizer.eos_id,), tokenizer.pad_id, (config.batch_size,))
        self.sampler = programs.sampler(sampling, mesh, self.rules)
        self.step = 0
        self.position = 0
        self.kl_coef = self._on_mesh(np.float32(config.kl.coef), batch=False)
        key = jax.random.key(config.seed)
        self.key = key if mesh is None else jax.random.wrap_key_data(self._on_mesh(jax.random.key_data(key), batch=False))
        shardings = None if mesh is None else pin_to_mesh((self.trainable, self.optimizer), mesh)
        self._base_policy_pass = programs.base_policy_pass(self.sampler_prompt_length)
        self._advantages = programs.advantages(config, self.properties)
        self._update = programs.update(config, self.sampler_prompt_length, self.rules, self.wrt, shardings)
        self._compilations = {"reference": 0, "advantages": 0, "update": 0}  # traced during this learner's calls
        self.workdir = None if workdir is None else Path(workdir)
        self._writer = None
        self._checkpoints = None
        self._faults = NonFiniteGuard(config.faults)
        self._unlogged: list[tuple[int, dict, dict]] = []  # (step, device metrics, host timings)
        self.history: list[dict[str, float]] = []

    # ----------------------------------------------------------------------------- setup

    def _on_mesh(self, x, batch: bool = True) -> jax.Array:
        """Host data (the same on every process) on the mesh: rows over the logical "batch" axis,
        or replicated; a plain device array without a mesh."""
        if self.mesh is None:
            return jnp.asarray(x)
        x = np.asarray(x)
        if not batch:
            return from_host(x, NamedSharding(self.mesh, PartitionSpec()))
        return from_host(x, logical_sharding(self.mesh, ("batch",) + (None,) * (x.ndim - 1), self.rules, shape=x.shape))

    def _mesh_context(self):
        return contextlib.nullcontext() if self.mesh is None else jax.set_mesh(self.mesh)

    # ----------------------------------------------------------------------------- programs

    def _call(self, phase: str, program: compiled.Program, *args):
        """``program(*args)``, counting the traces this call caused against ``phase``."""
        before = program.traces
        out = program(*args)
        self._compilations[phase] += program.traces - before
        return out

    @property
    def num_compilations(self) -> dict[str, int]:
        """Programs each phase traced during this learner's calls (0 when another learner's
        equal program served it; sampling: ``self.sampler.num_compilations``, the shared sampler's)."""
        return dict(self._compilations)

    @property
    def sampler_prompt_length(self) -> int:
        return self.config.rollout.max_prompt_length

    # ----------------------------------------------------------------------------- the step

    def train_step(self) -> dict[str, float]:
        """One sample-score-update step; returns its host timings (metrics are in ``history``
        once logged)."""
        c = self.config
        times = {}
        start = time.perf_counter()
        indices = self.stream.indices(self.position, c.prompts_per_step)
        self.key, sample_key, shuffle_key = jax.random.split(self.key, 3)
        with self._mesh_context():
            samples = sample_groups(self.sampler, self.trainable.policy, self.tokenizer,
                                    [self.prompt_ids[i] for i in indices], c.num_samples, sample_key)
        self._faults.check()  # the previous step's flags are ready: the sampler read its parameters
        times["time/sample"] = time.perf_counter() - start

        mark = time.perf_counter()
        rows = np.repeat(indices, c.num_samples)
        scores = to_host(score_all(self.reward_fns, [self.prompts[i] for i in rows], samples.texts, c.num_samples))
        rewards = self._on_mesh(np.stack([scores[p] for p in self.properties], axis=1).astype(np.float32))
        rewards.block_until_ready()
        times["time/score"] = time.perf_counter() - mark

        mark = time.perf_counter()
        out = trim(samples.output, c.rollout.response_columns(int(samples.lengths.max())))  # the rest is padding
        base_def, base_state = (None, None) if self.base_policy is None else nnx.split(self.base_policy)
        trainable_def, trainable_state = nnx.split(self.trainable)
        with self._mesh_context():
            base_logprobs, values = self._call("reference", self._base_policy_pass, base_def, trainable_def, base_state,
                                               trainable_state, out.tokens, out.prompt_mask, out.response_mask)
            base_logprobs.block_until_ready()
        times["time/reference"] = time.perf_counter() - mark

        mark = time.perf_counter()
        old_logprobs = out.model_logprobs[:, out.prompt_length :]
        response_mask = out.response_mask[:, out.prompt_length :]
        with self._mesh_context():
            advantages, returns, counted, metrics, flags = self._call(
                "advantages", self._advantages, rewards, self._on_mesh(self.references[rows]), self._on_mesh(samples.ended), old_logprobs, base_logprobs,
                values, response_mask, self.kl_coef,
            )
            batch = UpdateBatch(out.tokens, out.prompt_mask, out.response_mask, old_logprobs, base_logprobs, advantages, returns,
                                values, counted)
            update_metrics = self._optimize(batch, shuffle_key)
        metrics.update(update_metrics)
        flags.update({"loss": ~jnp.isfinite(update_metrics["loss"]), "gradients": ~jnp.isfinite(update_metrics["grad_norm"])})
        if c.kl.target is not None:
            self.kl_coef = kl.adaptive_coefficient(self.kl_coef, metrics["kl/sequence"], c.kl.target, c.kl.horizon, c.batch_size)
        jax.block_until_ready(metrics)
        times["time/update"] = time.perf_counter() - mark
        times["time/step"] = time.perf_counter() - start
        times["tokens_per_second"] = float(samples.lengths.sum()) / times["time/step"]
        times["response_columns"] = out.tokens.shape[1] - out.prompt_length  # the bucket the passes after sampling ran

        self.step += 1
        self.position += c.prompts_per_step
        self._faults.add(self.step, flags)
        self._unlogged.append((self.step, metrics, times))
        return times

    def _optimize(self, batch: UpdateBatch, key: jax.Array) -> dict[str, jax.Array]:
        """``epochs x minibatches`` optimizer steps on shuffled minibatches, each with its tokens'
        weights normalised over it by the algorithm's aggregation; mean metrics."""
        c = self.config
        size = c.batch_size // c.minibatches
        collected = []
        for epoch in range(c.epochs):
            order = jax.random.permutation(jax.random.fold_in(key, epoch), c.batch_size) if c.minibatches > 1 or c.epochs > 1 else None
            for m in range(c.minibatches):
                minibatch = batch if order is None else jax.tree.map(lambda x: x[order[m * size : (m + 1) * size]], batch)
                weights = algorithms.loss_weights(self.algorithm, minibatch.loss_weights, c.rollout.max_new_tokens)
                collected.append(self._call("update", self._update, self.trainable, self.optimizer,
                                            minibatch._replace(loss_weights=weights), self.kl_coef))
        return jax.tree.map(lambda *xs: jnp.mean(jnp.stack(xs)), *collected)

    # ----------------------------------------------------------------------------- the run

    def run(self, num_steps: int | None = None, *, progress: bool = True) -> list[dict[str, float]]:
        """Trains until ``num_steps`` (default ``config.num_steps``) steps are done; returns the
        logged metrics of every step (also in ``history``). On SIGTERM it stops before its next
        step, saves a checkpoint (with a ``workdir``) and raises
        ``alignment.training.preemption.Preempted``."""
        c = self.config
        total = c.num_steps if num_steps is None else num_steps
        self._open_outputs()
        preemption.install()
        bar = tqdm(total=total, initial=self.step, disable=not progress or not is_primary(), desc=f"{c.algorithm} learner")
        while self.step < total:
            if preemption.requested():  # before a step: what ran until now (e.g. judging) is kept
                bar.close()
                self.flush()
                if self.workdir is not None and self.step not in self._checkpoints.steps:
                    self.save()
                raise preemption.Preempted(self.step, saved=self.workdir is not None)
            self.train_step()
            bar.update(1)
            if self.step % c.log_every == 0 or self.step == total:
                last = self.flush()
                bar.set_postfix(utility=f"{last['utility']:.3f}", kl=f"{last['kl/sequence']:.2f}")
            if self._checkpoints is not None and c.checkpoint_every and self.step % c.checkpoint_every == 0:
                self.save()
        bar.close()
        self.flush()
        if self._checkpoints is not None and self.step not in self._checkpoints.steps:
            self.save()
        return self.history

    def flush(self) -> dict[str, float]:
        """Fetches and logs the pending steps' metrics (and checks their flags); returns the last."""
        self._faults.check()
        fetched = to_host([metrics for _, metrics, _ in self._unlogged])
        for (step, _, times), metrics in zip(self._unlogged, fetched):
            record = {"step": step, **{k: float(v) for k, v in metrics.items()}, **times}
            if self.config.faults.non_finite == "skip":
                record["update_skipped"] = float(step in self._faults.skipped)
            if self.config.faults.grad_spike_factor is not None:
                ratio = gradient_spike([h["grad_norm"] for h in self.history[-SPIKE_WINDOW:]], record["grad_norm"],
                                       self.config.faults.grad_spike_factor)
                record["grad_spike"] = float(ratio is not None)
                if ratio is not None and is_primary():
                    print(f"[learner] step {step}: gradient norm {record['grad_norm']:.3g} is {ratio:.1f} times the median "
                          f"of the last {min(len(self.history), SPIKE_WINDOW)} steps'", flush=True)
            self.history.append(record)
            if self._writer is not None:
                self._writer.write(step, {k: v for k, v in record.items() if k != "step"})
        self._unlogged = []
        return self.history[-1] if self.history else {}

    # ----------------------------------------------------------------------------- checkpoints

    def _open_outputs(self) -> None:
        if self.workdir is None:
            return
        if self._writer is None:
            self._writer = MetricsWriter(self.workdir)
        if self._checkpoints is None:
            self._checkpoints = Checkpoints(self.workdir / "checkpoints")

    def _state(self) -> dict:
        """What a checkpoint holds: the updated parameters (with LoRA: adapters and heads, not the
        frozen base), the optimizer, beta and the RNG key."""
        return {"model": nnx.state(self.trainable, self.wrt), "optimizer": nnx.state(self.optimizer), "kl_coef": self.kl_coef,
                "rng": jax.random.key_data(self.key)}

    def save(self) -> None:
        """Checkpoints the whole learner state at the current step (needs a ``workdir``)."""
        if self.workdir is None:
            raise ValueError("save() needs a workdir: pass workdir=... to the Learner")
        self._open_outputs()
        self._checkpoints.save(self.step, self._state(), {"step": self.step, "position": self.position}, wait=True)

    def restore(self, step: int | None = None) -> int:
        """Loads the state of ``step`` (default: the newest checkpoint in ``workdir`` that
        restores; a damaged newer one is named on stdout and passed over) onto the current
        placement; the next ``train_step`` continues the run exactly. Returns the step.
        ``DamagedCheckpointsError`` when no checkpoint restores."""
        if self.workdir is None:
            raise ValueError("restore() needs a workdir: pass workdir=... to the Learner")
        self._open_outputs()
        state = self._state()
        abstract = jax.tree.map(lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=x.sharding), state)
        if step is None:
            restored, meta, found, damaged = self._checkpoints.restore_latest_good(abstract)
            if damaged and is_primary():
                print(f"[learner] damaged checkpoints in {self._checkpoints.directory}: {'; '.join(damaged)}; "
                      f"restored step {found} instead", flush=True)
        else:
            restored, meta = self._checkpoints.restore(abstract, step)
        nnx.update(self.trainable, restored["model"])
        nnx.update(self.optimizer, restored["optimizer"])
        self.kl_coef = restored["kl_coef"]
        self.key = jax.random.wrap_key_data(restored["rng"])
        self.step, self.position = meta["step"], meta["position"]
        return self.step

    def export_policy(self, directory: str | Path) -> Path:
        """Writes the policy's parameters (LoRA adapters merged into the weights: a plain decoder)
        to ``directory`` for ``alignment.models.load_pretrained``; returns the directory."""
        return save_params(lora.merged(self.trainable.policy), directory)

    def close(self) -> None:
        """Flushes metrics and closes the metric writer and the checkpoint manager (reopened on demand)."""
        self.flush()
        if self._writer is not None:
            self._writer.close()
            self._writer = None
        if self._checkpoints is not None:
            self._checkpoints.close()
            self._checkpoints = None
