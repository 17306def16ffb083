"""How the pipeline writes what it keeps: JSON files replaced atomically, and module copies.

``write_json`` writes to a temporary file beside the target and renames it over the target, so a
process killed mid-write leaves the previous file or none, never a truncated one that a later
run's reuse check would read.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from alignment.parallel import distributed


def write_json(path: Path, value) -> None:
    """Writes ``value`` as JSON to ``path`` atomically, from the primary process only (every
    process computed it)."""
    if not distributed.is_primary():
        return
    path = Path(path)
    handle, temporary = tempfile.mkstemp(prefix=f".{path.name}-", dir=path.parent)
    try:
        with os.fdopen(handle, "w") as out:
            json.dump(value, out, default=json_default, indent=1)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def json_default(value):
    """JSON for NumPy scalars and arrays and for objects with a ``to_json`` method."""
    if isinstance(value, (np.floating, np.integer)):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if hasattr(value, "to_json"):
        return value.to_json()
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


def copy_module(module: nnx.Module) -> nnx.Module:
    """A copy that shares no buffers with ``module`` (trainers donate theirs)."""
    copy = nnx.clone(module)
    nnx.update(copy, jax.tree.map(jnp.copy, nnx.state(copy)))
    return copy
