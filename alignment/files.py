"""Files written so that a kill never leaves half of one: every JSON, text and array file that
the library keeps goes through ``atomic_write`` (a temporary file beside the target, flushed to
disk, then renamed over it), so a reader finds the previous file or none, never a truncated one.
``read_json`` names the file of a leftover that does not parse instead of raising a bare
``JSONDecodeError``. A write that fails (a full disk, a read-only directory, a path through a
file) is a ``WriteError`` naming the file and what was being written (``writing``): the previous
file, if any, is left as it was, so the same command run again after the cause is fixed resumes.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import re
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

import numpy as np


class DamagedFileError(ValueError):
    """A kept file that cannot be read back (truncated, or not what was written)."""


class WriteError(OSError):
    """A file could not be written; the message names it, what it holds and the cause."""


@contextlib.contextmanager
def writing(path: str | Path, what: str) -> Iterator[None]:
    """Turns an ``OSError`` inside the block into a ``WriteError`` naming ``path`` and ``what``
    (with a hint when the disk is full)."""
    try:
        yield
    except WriteError:
        raise
    except OSError as error:
        raise _write_error(error.errno, error.strerror or str(error), path, what) from error
    except ValueError as error:  # TensorStore (Orbax's array files) reports an OS error as a ValueError
        code = re.search(r"os_error_code='?(\d+)", str(error))
        if code is None:
            raise
        raise _write_error(int(code.group(1)), os.strerror(int(code.group(1))), path, what) from error


def _write_error(code: int | None, reason: str, path, what: str) -> WriteError:
    hint = "; free space and run the same command again (what was finished is kept)" if code == errno.ENOSPC else ""
    return WriteError(code, f"cannot write {what} to {path}: {reason}{hint}")


@contextlib.contextmanager
def atomic_write(path: str | Path, mode: str = "w") -> Iterator[IO]:
    """A file object whose contents replace ``path`` when the block ends without an error; a
    failed write leaves ``path`` as it was and raises ``WriteError``."""
    path = Path(path)
    with writing(path, "the file"):
        path.parent.mkdir(parents=True, exist_ok=True)
        handle, temporary = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
        try:
            with os.fdopen(handle, mode) as out:
                yield out
                out.flush()
                os.fsync(out.fileno())
            os.replace(temporary, path)
        except BaseException:
            Path(temporary).unlink(missing_ok=True)
            raise


def write_text(path: str | Path, text: str) -> None:
    with atomic_write(path) as out:
        out.write(text)


def write_json(path: str | Path, value: Any) -> None:
    """``value`` as indented JSON (NumPy scalars and arrays, and objects with ``to_json``, included)."""
    write_text(path, json.dumps(value, default=json_default, indent=1))


def write_npz(path: str | Path, compressed: bool = True, **arrays: np.ndarray) -> None:
    with atomic_write(path, "wb") as out:
        (np.savez_compressed if compressed else np.savez)(out, **arrays)


def read_json(path: str | Path) -> Any:
    """The JSON value in ``path``; ``DamagedFileError`` naming the file when it does not parse (not
    UTF-8, not JSON, nested too deep, an integer too long to read)."""
    try:
        return json.loads(Path(path).read_text(encoding="utf-8"))
    except (ValueError, RecursionError) as error:  # JSONDecodeError and UnicodeDecodeError are ValueErrors
        raise DamagedFileError(f"{path} is damaged (truncated or not JSON: {error})") from error


def json_default(value):
    """JSON for NumPy scalars and arrays and for objects with a ``to_json`` method."""
    if isinstance(value, (np.floating, np.integer)):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if hasattr(value, "to_json"):
        return value.to_json()
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")
