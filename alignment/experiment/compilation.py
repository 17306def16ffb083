"""JAX's persistent compilation cache for experiments: a later run, or the next item of a sweep,
skips most compilation."""

from __future__ import annotations

import os
from pathlib import Path

import jax


# jax.monitoring's duration events of a program's way to an executable, by stage (a trace nested
# in another is reported for both; "compile" is XLA's, or the persistent cache's read).
COMPILE_EVENTS = {"trace": "/jax/core/compile/jaxpr_trace_duration",
                  "lower": "/jax/core/compile/jaxpr_to_mlir_module_duration",
                  "compile": "/jax/core/compile/backend_compile_duration"}


def use_compilation_cache(directory: str | Path | None = None) -> Path | None:
    """Keeps compiled programs on disk (JAX's persistent compilation cache), so a later run or the
    next item of a sweep skips most compilation; returns the directory. ``directory``: a path,
    or "none" (off), else ``$JAX_COMPILATION_CACHE_DIR``, else ``$ALIGNMENT_CACHE/jax``, else
    ``$XDG_CACHE_HOME/alignment/jax`` (``~/.cache/alignment/jax``)."""
    if directory is not None and str(directory).lower() == "none":
        return None
    if directory is None:
        if os.environ.get("JAX_COMPILATION_CACHE_DIR"):
            directory = os.environ["JAX_COMPILATION_CACHE_DIR"]
        elif os.environ.get("ALIGNMENT_CACHE"):
            directory = Path(os.environ["ALIGNMENT_CACHE"]) / "jax"
        else:
            directory = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "alignment" / "jax"
    jax.config.update("jax_compilation_cache_dir", str(directory))
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.5)
    return Path(directory)
