"""Orbax save/restore of a model's parameters, restorable onto any mesh.

The checkpoint holds the pure nested dict of ``nnx.Param`` arrays (``nnx.to_pure_dict``), so it
is readable without the model class. Restoring takes a model of the right structure (real, or
abstract from ``nnx.eval_shape``) and reads every array directly into its target sharding:
the sharding resolved from the parameter's logical axes on ``mesh`` (any shape, not the one it
was saved from), or the first device without a mesh. This is the one format for parameters
alone (the sandbox stores its policy with it); the state of a training run (optimizer, step,
data position) goes to ``alignment.training.checkpointing.Checkpoints``.
"""

from __future__ import annotations

import json
from pathlib import Path

import jax
import orbax.checkpoint as ocp
from flax import nnx
from jax.sharding import Mesh, SingleDeviceSharding

from alignment.files import DamagedFileError
from alignment.models.partitioning import abstract_state
from alignment.parallel import DEFAULT_RULES

# TensorStore's status for array files that are cut short or overwritten (a ValueError).
_DAMAGE_STATUSES = ("DATA_LOSS:", "OUT_OF_RANGE:")


def save_params(model: nnx.Module, directory: str | Path, *, overwrite: bool = False) -> Path:
    """Writes the parameters of ``model`` to ``directory`` (absolute path); returns it."""
    directory = Path(directory).absolute()
    if directory.exists() and not overwrite:
        raise FileExistsError(f"checkpoint directory already exists: {directory} (pass overwrite=True)")
    with ocp.StandardCheckpointer() as checkpointer:
        checkpointer.save(directory, nnx.to_pure_dict(nnx.state(model, nnx.Param)), force=overwrite)
    return directory


def restore_params(
    model: nnx.Module, directory: str | Path, *, mesh: Mesh | None = None, rules=DEFAULT_RULES
) -> nnx.Module:
    """A copy of ``model`` holding the parameters saved in ``directory``, placed on ``mesh``.

    Raises ``FileNotFoundError`` for a missing directory, ``ValueError`` naming it when the saved
    parameters are not the model's, ``DamagedFileError`` (a ``ValueError``) when its files are
    truncated or corrupt.
    """
    directory = Path(directory).absolute()
    if not directory.is_dir():
        raise FileNotFoundError(f"checkpoint directory not found: {directory}")
    graphdef, state, rest = nnx.split(model, nnx.Param, ...)
    if mesh is None:
        device = SingleDeviceSharding(jax.devices()[0])
        target = jax.tree.map(lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=device), nnx.to_pure_dict(state))
    else:
        target = nnx.to_pure_dict(abstract_state(state, mesh, rules))
    with ocp.StandardCheckpointer() as checkpointer:
        try:
            restored = checkpointer.restore(directory, target)
        except (json.JSONDecodeError, UnicodeDecodeError) as error:  # a metadata file cut short or overwritten
            raise DamagedFileError(f"checkpoint {directory} is damaged (a metadata file is not JSON: {error})") from error
        except (ValueError, KeyError) as error:
            if str(error).startswith(_DAMAGE_STATUSES):
                raise DamagedFileError(f"checkpoint {directory} is damaged ({str(error)[:300]})") from error
            raise ValueError(f"checkpoint {directory} does not match the model's parameters: {error}") from error
        except Exception as error:  # TensorStore raises a bare Exception for array data it cannot read
            detail = str(error).splitlines()[0][:300] if str(error) else type(error).__name__
            raise DamagedFileError(f"checkpoint {directory} is damaged (unreadable array data: {detail})") from error
    nnx.replace_by_pure_dict(state, restored)
    return nnx.merge(graphdef, state, rest)
