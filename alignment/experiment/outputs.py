"""What the pipeline writes and copies: JSON from the primary process only (atomically,
``alignment.files``), and module copies that share no buffers.
"""

from __future__ import annotations

from pathlib import Path

import jax
import jax.numpy as jnp
from flax import nnx

from alignment import files
from alignment.parallel import distributed


def write_json(path: Path, value) -> None:
    """Writes ``value`` as JSON to ``path`` atomically, from the primary process only (every
    process computed it)."""
    if distributed.is_primary():
        files.write_json(path, value)


def copy_module(module: nnx.Module) -> nnx.Module:
    """A copy that shares no buffers with ``module`` (trainers donate theirs)."""
    copy = nnx.clone(module)
    nnx.update(copy, jax.tree.map(jnp.copy, nnx.state(copy)))
    return copy
