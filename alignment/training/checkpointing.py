"""Orbax checkpoints of a whole training run: arrays (model, optimizer, RNG) plus JSON metadata.

    import tempfile
    import jax
    import jax.numpy as jnp
    from alignment.training.checkpointing import Checkpoints

    checkpoints = Checkpoints(tempfile.mkdtemp() + "/checkpoints", max_to_keep=3)
    state = {"w": jnp.ones(3), "rng": jax.random.key_data(jax.random.key(0))}
    checkpoints.save(10, state, {"data_position": 1280}, wait=True)
    abstract = jax.tree.map(lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=x.sharding), state)
    restored, meta = checkpoints.restore(abstract)             # the latest step, placed as abstract says
    checkpoints.close()

``state`` is any pytree of arrays (e.g. ``nnx.state((model, optimizer))`` plus an RNG key's
``jax.random.key_data``); ``abstract_state`` holds ``jax.ShapeDtypeStruct`` leaves whose
``sharding`` says where each restored array goes, so a run can resume on a different mesh.
``meta`` is JSON: data-iterator position, config, anything a resume needs. On several processes
every process calls ``save`` and ``restore`` with the same arguments (Orbax coordinates them,
each process writing and reading its own shards), in a directory that all of them can reach.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orbax.checkpoint as ocp

from alignment.files import DamagedFileError, writing


class DamagedCheckpointsError(DamagedFileError):
    """No checkpoint of a run could be restored (each step's error is in the message)."""


class Checkpoints:
    def __init__(self, directory: str | Path, max_to_keep: int | None = 3):
        self.directory = Path(directory).absolute()
        self._manager = ocp.CheckpointManager(
            self.directory,
            options=ocp.CheckpointManagerOptions(max_to_keep=max_to_keep, create=True),
        )

    @property
    def latest_step(self) -> int | None:
        return self._manager.latest_step()

    @property
    def steps(self) -> list[int]:
        return list(self._manager.all_steps())

    def save(self, step: int, state: Any, meta: dict | None = None, *, wait: bool = False) -> None:
        """Saves asynchronously (``wait=True`` blocks until the files are complete); a failed
        write is a ``WriteError`` naming the directory and the step."""
        with writing(self.directory, f"the checkpoint of step {step}"):
            self._manager.save(
                step, args=ocp.args.Composite(state=ocp.args.StandardSave(state), meta=ocp.args.JsonSave(meta or {}))
            )
            if wait:
                self._manager.wait_until_finished()

    def restore(self, abstract_state: Any, step: int | None = None) -> tuple[Any, dict]:
        """The state (placed as ``abstract_state`` says) and metadata of ``step`` (default: latest)."""
        step = self.latest_step if step is None else step
        if step is None or step not in self.steps:
            raise FileNotFoundError(f"no checkpoint for step {step} in {self.directory}; available steps: {self.steps}")
        restored = self._manager.restore(
            step, args=ocp.args.Composite(state=ocp.args.StandardRestore(abstract_state), meta=ocp.args.JsonRestore())
        )
        return restored["state"], restored["meta"]

    def restore_latest_good(self, abstract_state: Any) -> tuple[Any, dict, int, list[str]]:
        """The newest checkpoint that restores: ``(state, meta, step, damaged)``, ``damaged``
        naming each newer step that did not restore and why (a truncated array file, a missing
        metadata file). ``DamagedCheckpointsError`` when none restores."""
        damaged = []
        for step in sorted(self.steps, reverse=True):
            try:
                state, meta = self.restore(abstract_state, step)
            except Exception as error:  # Orbax and TensorStore raise many kinds for a damaged file
                damaged.append(f"step {step} ({type(error).__name__}: {str(error)[:200]})")
                continue
            return state, meta, step, damaged
        raise DamagedCheckpointsError(f"no checkpoint in {self.directory} restores: " + ("; ".join(damaged) or "there are none"))

    def close(self) -> None:
        self._manager.wait_until_finished()
        self._manager.close()
