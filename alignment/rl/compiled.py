"""Compiled programs shared by the learners of one process.

A grid of runs (seeds x utilities x KL weights; the science experiments have dozens) builds one
``Learner`` per run, all of the same shapes. With programs of their own, every learner traces,
lowers and compiles the same sampler, base-policy pass, advantages and update again (JAX's
persistent cache saves only the XLA compilation, and only of programs slower than its threshold).
``SharedPrograms`` keys each program by what it reads, so learners that agree on that call one
jitted function, and JAX's in-memory cache serves them one executable:

    sampler            the ``SamplerConfig``, mesh and rules
    base_policy_pass   the prompt length (the graph definitions are its static arguments)
    advantages         ``program_config(config, ADVANTAGES_IGNORE)`` and the properties
    update             ``program_config(config, UPDATE_IGNORE)``, the prompt length, the rules,
                       what is trained (``wrt``) and the state's shardings
    optimizer          the optimizer config, ``num_steps`` and updates per step (the optax
                       transformation sits in the optimizer's graph definition, so learners
                       share the update's executable only if they share this object)

A shared program computes with the key's config, in which the fields it never reads are reset
to their defaults, so learners share a program only when it computes the same for each of them
(``tests/test_rl_compiled.py`` checks the reset fields against the real config's results). JAX
retraces a shared program for new shapes, shardings or graph definitions as it would its own.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import jax
import numpy as np
import optax

from alignment import nested
from alignment.rl.config import LearnerConfig, make_optimizer
from alignment.rl.programs import base_policy_pass, policy_loss, rollout_advantages
from alignment.sampling import Sampler, SamplerConfig
from alignment.training.steps import make_train_step

# Read by the learner's loop on the host, never by a program: beta is an input of the programs,
# ``kl.target``/``kl.horizon`` adapt it between steps, ``faults`` judges the flags they return.
LOOP_ONLY = ("num_steps", "seed", "log_every", "checkpoint_every", "faults", "kl.coef", "kl.target", "kl.horizon")
# The advantages read no optimizer setting, adapters or update schedule.
ADVANTAGES_IGNORE = LOOP_ONLY + ("optimizer", "lora", "epochs", "minibatches", "microbatches")
# The update's loss reads no utility or shaping (the advantages carry them) and no update
# schedule; its optimizer (and adapters) reach it through the optimizer's (and the model's)
# graph definition.
UPDATE_IGNORE = LOOP_ONLY + ("utility", "shaping", "optimizer", "lora", "epochs", "minibatches")


def program_config(config: LearnerConfig, ignore: Sequence[str]) -> LearnerConfig:
    """``config`` with the fields at the dotted paths ``ignore`` reset to ``LearnerConfig()``'s."""
    default = LearnerConfig()
    return nested.replace(config, {path: nested.get(default, path) for path in ignore})


def frozen(value: Any) -> Any:
    """A hashable value equal for equal configs: dataclasses, mappings, sequences and arrays as
    nested tuples (a config's ``Utility`` holds dicts)."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return (type(value),) + tuple((f.name, frozen(getattr(value, f.name))) for f in dataclasses.fields(value))
    if isinstance(value, Mapping):
        return (dict,) + tuple(sorted((k, frozen(v)) for k, v in value.items()))
    if isinstance(value, (list, tuple)):
        return (tuple,) + tuple(frozen(v) for v in value)
    if isinstance(value, np.ndarray):
        return (np.ndarray, value.dtype.str, value.shape, value.tobytes())
    hash(value)  # anything else must be hashable as it is
    return value


class Program:
    """A jitted function that counts its traces (``traces``)."""

    def __init__(self, fn: Callable, **jit_options):
        self.traces = 0

        def counted(*args):
            self.traces += 1
            return fn(*args)

        self._jitted = jax.jit(counted, **jit_options)

    def __call__(self, *args):
        return self._jitted(*args)


class TrainStep(Program):
    """``make_train_step``'s program as a ``Program`` (it counts its own traces)."""

    def __init__(self, step: Callable):
        self._jitted = step

    @property
    def traces(self) -> int:
        return self._jitted.num_compilations


class SharedPrograms:
    """The programs of the learners that use it (module docstring); ``SHARED`` is the process's."""

    def __init__(self):
        self._programs: dict[tuple, Any] = {}

    def _get(self, key: tuple, build: Callable[[], Any]) -> Any:
        if key not in self._programs:
            self._programs[key] = build()
        return self._programs[key]

    def clear(self) -> None:
        """Forgets every program (their executables are freed once no learner holds them)."""
        self._programs.clear()

    def __len__(self) -> int:
        return len(self._programs)

    def sampler(self, config: SamplerConfig, mesh, rules) -> Sampler:
        return self._get(("sampler", config, mesh, tuple(rules)), lambda: Sampler(config, mesh=mesh, rules=rules))

    def base_policy_pass(self, prompt_length: int) -> Program:
        return self._get(("base_policy_pass", prompt_length),
                         lambda: Program(functools.partial(base_policy_pass, prompt_length=prompt_length), static_argnums=(0, 1)))

    def advantages(self, config: LearnerConfig, properties: Sequence[str]) -> Program:
        config = program_config(config, ADVANTAGES_IGNORE)
        return self._get(("advantages", frozen(config), tuple(properties)),
                         lambda: Program(functools.partial(rollout_advantages, config=config, properties=tuple(properties))))

    def optimizer(self, config: LearnerConfig) -> optax.GradientTransformation:
        return self._get(("optimizer", frozen(config.optimizer), config.num_steps, config.epochs * config.minibatches),
                         lambda: make_optimizer(config))

    def update(self, config: LearnerConfig, prompt_length: int, rules, wrt, state_shardings) -> TrainStep:
        """``make_train_step`` of ``policy_loss``: ``step(trainable, optimizer, batch, kl_coef)``."""
        config = program_config(config, UPDATE_IGNORE)
        shardings = None if state_shardings is None else (jax.tree.structure(state_shardings), tuple(jax.tree.leaves(state_shardings)))
        key = ("update", frozen(config), prompt_length, tuple(rules), wrt, shardings)

        def build():
            loss = functools.partial(policy_loss, config=config, prompt_length=prompt_length, rules=tuple(rules))
            return TrainStep(make_train_step(loss, wrt, state_shardings, microbatches=config.microbatches, reduction="sum"))

        return self._get(key, build)


SHARED = SharedPrograms()
