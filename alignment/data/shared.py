"""The shared directory of real preference files: where it is, and how its files are read.

The files live beside the project, never inside it: in an explicit directory, else
``$ALIGNMENT_SHARED_DATA``, else ``../shared/data`` beside the repository (``data_dir``).
Real files have known quirks that the reader rejects by default, so each format is read with
the options of ``READER_OPTIONS``: HH-RLHF has a few empty chosen responses ("say nothing"),
kept; AlpacaEval compares its reference model with itself (identical outputs, no preference),
skipped and counted in the parse report.
"""

from __future__ import annotations

import os
from pathlib import Path

from alignment.data.formats import get_format
from alignment.data.reader import Loaded, load_preferences

DATA_ENV = "ALIGNMENT_SHARED_DATA"
READER_OPTIONS = {"hh": {"allow_empty_responses": True}, "alpaca_eval": {"on_error": "skip"}}


def default_data_dir() -> Path:
    """``$ALIGNMENT_SHARED_DATA`` if set, else ``../shared/data`` beside the repository."""
    if os.environ.get(DATA_ENV):
        return Path(os.environ[DATA_ENV])
    return Path(__file__).resolve().parents[3] / "shared" / "data"


def data_dir(directory: str | os.PathLike | None = None) -> Path:
    """``directory`` itself, or ``default_data_dir()`` when it is ``None``."""
    return default_data_dir() if directory is None else Path(directory)


def check_file(path: str | os.PathLike, format: str) -> Path:
    """``path`` if it is a file of a known format; ``FileNotFoundError`` naming the path and
    ``$ALIGNMENT_SHARED_DATA``, or ``KeyError`` listing the valid formats."""
    get_format(format)
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"preference file not found: {path} (set ${DATA_ENV} to the shared data directory)")
    return path


def load_shared(path: str | os.PathLike, format: str, property: str) -> Loaded:
    """The records of one shared file, read with its format's ``READER_OPTIONS``."""
    return load_preferences(check_file(path, format), format, property=property, **READER_OPTIONS.get(format, {}))
