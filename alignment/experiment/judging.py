"""Judging a policy on the held-out prompts, and keeping what was judged.

``PolicyJudge`` samples each policy (and pi_0) with a key of its own, scores the samples with
the task's judge and the proxies, and estimates KL(pi || pi_0) from the same samples through the
learner's own program (``alignment.rl.programs.response_logprobs``). A judged checkpoint's
arrays are kept as ``<run>/judged/step_<step>.npz`` (``save_samples`` / ``attach_samples``).
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import zipfile
from collections.abc import Sequence
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from alignment import files
from alignment.experiment.tasks import TaskData
from alignment.files import DamagedFileError
from alignment.models.decoder import Decoder
from alignment.parallel import distributed
from alignment.rl.programs import response_logprobs
from alignment.rl.rollout import RolloutConfig, sample_groups
from alignment.rl.scoring import RewardFunction, score_all
from alignment.sampling import Sampler


@dataclasses.dataclass
class JudgedSamples:
    """``[prompts, samples]`` responses on the held-out prompts with their judge scores
    ``[n, m, P]``, proxy rewards ``[n, m, P]`` and sampled sequence KL(pi || pi_0) ``[n, m]``."""

    texts: np.ndarray
    judge: np.ndarray
    proxy: np.ndarray
    kl: np.ndarray

    def arrays(self) -> dict[str, np.ndarray]:
        """The numbers (not the texts) as float32 arrays: a checkpoint's ``samples``."""
        return {"judge": np.asarray(self.judge, np.float32), "proxy": np.asarray(self.proxy, np.float32),
                "kl": np.asarray(self.kl, np.float32)}


_response_logprobs = nnx.jit(response_logprobs, static_argnums=(4,))  # the learner's program, jitted for the judge


def stream_id(name: str) -> int:
    """A stable 31-bit number for a name (the run's sampling stream; Python's ``hash`` is salted)."""
    return int.from_bytes(hashlib.sha256(name.encode()).digest()[:4], "little") & 0x7FFFFFFF


class PolicyJudge:
    """Samples responses to the held-out prompts from a policy and judges them.

    Every call samples with a key of its own, ``fold_in(fold_in(key(seed), stream_id(stream)),
    step)``: pi_0 (stream "pi_0") and every checkpoint of every run draw independent samples, so
    a win rate over pi_0 compares independent samples of the two policies, the estimand of Wang
    et al. (arXiv 2402.00742), and not common random numbers (which make a policy near pi_0
    copy pi_0's sample for the same key). The sampled KL is ``sum_t log pi(y_t) - log pi_0(y_t)``
    over each response sampled from pi (as ``rollout`` says, the learners' distribution), an
    unbiased estimate of KL(pi || pi_0) when that distribution is the policy's own (temperature
    1, no top-k or top-p).
    """

    def __init__(self, task: TaskData, base_policy: Decoder, proxies: Sequence[RewardFunction], *,
                 rollout: RolloutConfig, samples: int, base_samples: int, seed: int, mesh=None):
        self.task, self.base_policy, self.proxies, self.mesh = task, base_policy, list(proxies), mesh
        self.samples, self.base_samples = samples, base_samples
        tokenizer = task.tokenizer
        self.prompt_ids = rollout.encode(tokenizer, task.eval_chats)
        n = len(self.prompt_ids)
        self.sampler = Sampler(rollout.sampler_config((tokenizer.eos_id,), tokenizer.pad_id, (n * samples, n * base_samples)), mesh=mesh)
        self.key = jax.random.key(seed)

    def __call__(self, policy: Decoder, stream: str, step: int = 0, samples: int | None = None) -> JudgedSamples:
        """``samples`` (default ``self.samples``) responses per held-out prompt from ``policy``,
        drawn with the key of ``(stream, step)`` (class docstring)."""
        n, m = len(self.prompt_ids), samples or self.samples
        key = jax.random.fold_in(jax.random.fold_in(self.key, stream_id(stream)), step)
        with contextlib.nullcontext() if self.mesh is None else jax.set_mesh(self.mesh):
            out = sample_groups(self.sampler, policy, self.task.tokenizer, self.prompt_ids, m, key)
            o = out.output
            base_logprobs = _response_logprobs(self.base_policy, o.tokens, o.prompt_mask, o.response_mask, o.prompt_length)
        mask = o.response_mask[:, o.prompt_length :]
        kl = np.asarray(jax.device_get(jnp.sum((o.model_logprobs[:, o.prompt_length :] - base_logprobs) * mask, axis=1)))
        chats = [chat for chat in self.task.eval_chats for _ in range(m)]
        judge = self.task.judge(chats, out.texts)
        scores = score_all(self.proxies, chats, out.texts, m)
        proxy = np.stack([np.asarray(scores[p]) for p in self.task.properties], axis=-1)
        P = len(self.task.properties)
        return JudgedSamples(np.array(out.texts, dtype=object).reshape(n, m), judge.reshape(n, m, P), proxy.reshape(n, m, P), kl.reshape(n, m))

    def base(self, policy: Decoder) -> JudgedSamples:
        """pi_0's own ``base_samples`` per held-out prompt (its KL to itself is 0 up to rounding)."""
        return self(policy, "pi_0", 0, self.base_samples)


def save_samples(directory: Path, step: int, samples: dict[str, np.ndarray]) -> None:
    """A judged checkpoint's per-prompt, per-sample arrays: ``<run>/judged/step_<step>.npz``."""
    if distributed.is_primary():
        (directory / "judged").mkdir(exist_ok=True)
        files.write_npz(directory / "judged" / f"step_{step}.npz", **samples)


def attach_samples(directory: Path, evaluations: list[dict]) -> list[dict]:
    """The checkpoint records with their ``samples`` arrays read back from ``<run>/judged``."""
    out = []
    for record in evaluations:
        path = directory / "judged" / f"step_{record['step']}.npz"
        if not path.is_file():
            raise FileNotFoundError(f"{path}: the judged samples of step {record['step']} are missing; delete {directory} to rerun it")
        try:
            with np.load(path, allow_pickle=False) as arrays:
                out.append({**record, "samples": {name: arrays[name] for name in arrays.files}})
        except (OSError, ValueError, EOFError, zipfile.BadZipFile) as error:
            raise DamagedFileError(f"{path} is damaged ({error!r})") from error
    return out


def without_samples(evaluations: list[dict]) -> list[dict]:
    """The checkpoint records without their arrays (for the JSON files)."""
    return [{k: v for k, v in record.items() if k != "samples"} for record in evaluations]


