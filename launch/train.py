"""The one entry point: an experiment from Fiddle flags, run to its report.

    alignment-train --config config:quickstart --workdir runs/quickstart
    python launch/train.py --config config:paper_sandbox --config set:learner.num_steps=24 --workdir runs/paper
    python launch/train.py --config config:quickstart \\
        --config "sweep:values('learner.num_steps', [20, 40])" --workdir runs/steps

``--config`` takes Fiddle's commands in order: ``config:NAME`` (a builder of
``alignment.configs``), ``set:path=value``, ``fiddler:NAME`` and ``sweep:NAME(...)``; a sweep
runs one experiment per item, each in ``<workdir>/<override>=<value>``. Each run directory gets
its fully resolved config (``config.json``, Fiddle's serialisation, and ``config.txt``, one
line per field) before anything runs. An override of a base learner field that a run sets
itself (every named experiment sets each run's ``kl.coef``, ``utility`` and ``algorithm``) would
not reach that run, so it is refused before anything runs, naming the run and the field;
override the run's own field instead (``set:runs[0].kl_coef=0.1``). Lengths and sampling are
set once, in ``learner.rollout`` (``set:learner.rollout.max_new_tokens=64``). On SIGTERM the
running learner stops after its current step, saves a checkpoint, and the command exits with 143
and a line saying so; the same command again resumes there. A file that cannot be written (a
full disk, a read-only directory, a path through a file) stops the command with exit code 74 and
a line naming the file and what it holds; what was finished is kept, and the same command
resumes. Several processes
(``launch/multihost.py``, a TPU pod) each run this same command.
"""

from __future__ import annotations

import ast
import re
import sys
from pathlib import Path

import fiddle as fdl
from absl import app, flags, logging
from fiddle import absl_flags as fdl_flags
from fiddle import printing
from fiddle.experimental import serialization

from alignment import configs, files, nested
from alignment.experiment import Experiment, run_experiment, use_compilation_cache
from alignment.parallel import distributed
from alignment.training import preemption

PREEMPTED_EXIT_CODE = 143  # 128 + SIGTERM, as a process killed by it would report
WRITE_ERROR_EXIT_CODE = 74  # EX_IOERR (sysexits.h)

_CONFIG = fdl_flags.DEFINE_fiddle_sweep(
    "config", default_module=configs, help="config:NAME, then any set:, fiddler: and sweep: commands (Fiddle)."
)
_WORKDIR = flags.DEFINE_string("workdir", None, "The run directory (one subdirectory per sweep item).", required=True)
_SANDBOX_CACHE = flags.DEFINE_string("sandbox_cache", None, "The sandbox cache (default: $ALIGNMENT_SANDBOX_CACHE, else ~/.cache).")
_PROGRESS = flags.DEFINE_bool("progress", True, "Show progress bars (stage lines are always printed).")
_COMPILATION_CACHE = flags.DEFINE_string(
    "compilation_cache", None,
    "JAX's persistent compilation cache: a later run, or the next item of a sweep, reuses the compiled programs "
    "(default: $JAX_COMPILATION_CACHE_DIR, else $ALIGNMENT_CACHE/jax, else ~/.cache/alignment/jax; 'none' turns it off).",
)


def run_directory(workdir: Path, overrides: dict, many: bool) -> Path:
    """``workdir`` itself, or one subdirectory per sweep item named by its overrides."""
    if not many:
        return workdir
    name = ",".join(f"{key}={value}" for key, value in sorted(overrides.items()))
    return workdir / re.sub(r"[^A-Za-z0-9_.,=+-]", "_", name)


def base_config(command: str) -> fdl.Config:
    """The experiment of the first ``--config`` command (``config:NAME`` or ``config:NAME(k=v)``)
    before any override."""
    call = ast.parse(command.removeprefix("config:"), mode="eval").body
    if isinstance(call, ast.Name):
        return getattr(configs, call.id)()
    if not (isinstance(call, ast.Call) and isinstance(call.func, ast.Name)):
        raise app.UsageError(f"--config {command!r}: expected config:NAME or config:NAME(...)")
    args = [ast.literal_eval(a) for a in call.args]
    return getattr(configs, call.func.id)(*args, **{k.arg: ast.literal_eval(k.value) for k in call.keywords})


def changed_learner_fields(base: fdl.Config, config: fdl.Config) -> list[str]:
    """The base learner's fields (dotted paths of leaves, e.g. ``kl.coef``) that the overrides changed."""
    return nested.changed(fdl.build(base.learner), fdl.build(config.learner))


def write_resolved_config(config: fdl.Buildable, directory: Path) -> None:
    files.write_text(directory / "config.json", serialization.dump_json(config, indent=1))
    files.write_text(directory / "config.txt", printing.as_str_flattened(config) + "\n")


def main(argv) -> None:
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {argv[1:]}")
    if not flags.FLAGS["verbosity"].present:
        logging.set_verbosity(logging.WARNING)  # Orbax logs every checkpoint at INFO
    preemption.install()  # SIGTERM from here on stops the running learner at its next step, saved
    use_compilation_cache(_COMPILATION_CACHE.value)
    distributed.initialize()
    items = _CONFIG.value
    experiments = []
    for item in items:
        if not (isinstance(item.config, fdl.Config) and fdl.get_callable(item.config) is Experiment):
            raise app.UsageError(
                f"--config config:NAME must name an experiment builder; {fdl.get_callable(item.config).__name__} is not one. "
                f"Valid: {', '.join(configs.EXPERIMENTS)}"
            )
        experiment = fdl.build(item.config)
        shadowed = experiment.shadowed(changed_learner_fields(base_config(flags.FLAGS.config[0]), item.config))
        if shadowed:
            raise app.UsageError(
                f"an override would not reach every run: {'; '.join(shadowed)}. Override the runs' own fields "
                f"(set:runs[0].kl_coef=...) instead, or leave them unset in the experiment's config"
            )
        experiments.append(experiment)
    for item, experiment in zip(items, experiments):
        directory = run_directory(Path(_WORKDIR.value), dict(item.overrides_applied), len(items) > 1)
        try:
            if distributed.is_primary():
                write_resolved_config(item.config, directory)
            run_experiment(experiment, directory, cache_dir=_SANDBOX_CACHE.value, progress=_PROGRESS.value)
        except preemption.Preempted as stop:
            print(f"[experiment] preempted: the learner {stop}", flush=True)
            sys.exit(PREEMPTED_EXIT_CODE)
        except files.WriteError as error:  # a full disk, a read-only directory, a path through a file
            print(f"[experiment] stopped: {error}", flush=True)
            sys.exit(WRITE_ERROR_EXIT_CODE)
        print(f"[experiment] report: {directory / 'report' / 'report.md'}", flush=True)


def run() -> None:
    """The ``alignment-train`` console script."""
    app.run(main)


if __name__ == "__main__":
    run()
