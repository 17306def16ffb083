"""A short RLOO run of a tiny random policy on a data-parallel mesh over every device of every
process; process 0 writes OUT/result.npz (final parameters, logged metrics, restored step).

    python tests/multihost_job.py OUT                                          # one process
    python launch/multihost.py --num_processes 2 -- python tests/multihost_job.py OUT

The run checkpoints into OUT/run after every step, and resumes from there when started again
(every process restores its shards); a fresh learner in every process then restores the last
checkpoint and must hold the trained parameters. Run by tests/test_multihost.py and, killed and
restarted, by tests/test_kill_trials.py.
"""

import hashlib
import sys
from pathlib import Path

from alignment.parallel import initialize

initialize()  # before any other JAX call: a no-op unless launch/multihost.py set the environment

import jax  # noqa: E402
from jax.experimental import multihost_utils  # noqa: E402
import numpy as np  # noqa: E402
from flax import nnx  # noqa: E402

from alignment import rl, sandbox  # noqa: E402
from alignment.models import Decoder, get_config  # noqa: E402
from alignment.models.heads import RewardModel  # noqa: E402
from alignment.models.partitioning import shard_model  # noqa: E402
from alignment.parallel import is_primary, make_mesh, to_host  # noqa: E402

TOKENIZER = sandbox.sandbox_tokenizer()
CHATS = [sandbox.policy.messages(p) for p in sandbox.all_prompts()[:8]]
CONFIG = rl.LearnerConfig(algorithm="rloo", prompts_per_step=2, num_samples=4,
                          rollout=rl.RolloutConfig(max_prompt_length=32, max_new_tokens=8),
                          optimizer=rl.OptimizerConfig(learning_rate=1e-3), num_steps=2, checkpoint_every=1)


def _decoder(seed: int) -> Decoder:
    return Decoder(get_config("tiny", vocab_size=TOKENIZER.vocab_size, init_std=0.3), rngs=nnx.Rngs(seed))


def text_hash(chat, response: str) -> dict[str, float]:
    """A deterministic score in [-1, 1) of the response text."""
    return {"hash": hashlib.sha256(response.encode()).digest()[0] / 128.0 - 1.0}


def learner(mesh, workdir: Path) -> rl.Learner:
    """The learner: a function reward and a random reward model, both read on ``mesh``."""
    reward_model = shard_model(RewardModel(_decoder(3), rngs=nnx.Rngs(4)), mesh)
    rewards = [rl.FunctionReward(text_hash, ("hash",)), rl.ModelReward(reward_model, TOKENIZER, ("model",), max_length=64, mesh=mesh)]
    references = {"hash": np.zeros(len(CHATS), np.float32), "model": np.zeros(len(CHATS), np.float32)}
    policy = _decoder(0)
    return rl.Learner(policy, nnx.clone(policy), TOKENIZER, rewards, CHATS, references, CONFIG, mesh=mesh, workdir=workdir)


def params(trained: rl.Learner) -> list[np.ndarray]:
    return to_host(jax.tree.leaves(nnx.state(trained.trainable, nnx.Param)))


def main(out: Path) -> None:
    mesh = make_mesh(data=-1)
    # Started again after a kill: continue from the last checkpoint. Every process decides
    # before any of them can write one (the barrier), so they all decide alike.
    resume = any(path.name.isdigit() for path in (out / "run" / "checkpoints").glob("*"))
    multihost_utils.sync_global_devices("multihost_job: resume decided")
    trained = learner(mesh, out / "run")
    if resume:
        print(f"process {jax.process_index()} of {jax.process_count()}: resumed at step {trained.restore()}", flush=True)
    trained.run(progress=False)
    trained.close()
    final = params(trained)  # every process: a gather is a collective
    restored = learner(mesh, out / "run")
    step = restored.restore()
    for x, y in zip(final, params(restored)):
        np.testing.assert_array_equal(x, y, err_msg=f"process {jax.process_index()}: restored parameters differ")
    if is_primary():
        metrics = {f"metric/{k}": np.array([h[k] for h in trained.history]) for k in trained.history[0]}
        np.savez(out / "result.npz", restored_step=step, processes=jax.process_count(), devices=jax.device_count(),
                 **{f"param/{i}": x for i, x in enumerate(final)}, **metrics)
    print(f"process {jax.process_index()} of {jax.process_count()}: done, restored step {step}")


if __name__ == "__main__":
    main(Path(sys.argv[1]))
