"""Fiddle overrides, fuzzed: any field of a named experiment set to a value of the wrong type or
size either builds or fails with a ``TypeError`` / ``ValueError`` that names the field; an
unknown field and a mesh the devices cannot fill fail naming what is wrong. Never a bare error
from deep inside the code that would read the value."""

import dataclasses

import fiddle as fdl
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from alignment import configs, nested
from alignment.experiment import MeshSpec, Pipeline

SECTIONS = ("learner", "task", "reference", "reward_models", "evaluation", "best_of_k")
BAD_VALUES = ("8", -1, 0, -0.5, 1.5, None, True, [1], {"a": 1}, 10**30, float("nan"))


def _leaf_paths() -> list[str]:
    """Every settable leaf of the smoke experiment's sections, as ``section.a.b`` paths."""
    config = configs.smoke()
    paths = []
    for section in SECTIONS:
        built = fdl.build(getattr(config, section))
        for path in nested.leaves(built):
            node = getattr(config, section)
            for part in path.split(".")[:-1]:
                node = getattr(node, part)
            if isinstance(node, fdl.Buildable):
                paths.append(f"{section}.{path}")
    return paths


PATHS = _leaf_paths()


def _set(config: fdl.Config, path: str, value) -> None:
    *parents, leaf = path.split(".")
    node = config
    for part in parents:
        node = getattr(node, part)
    setattr(node, leaf, value)


def test_the_fuzzed_paths_cover_every_section():
    assert {p.split(".")[0] for p in PATHS} == set(SECTIONS) and len(PATHS) > 60
    assert {"learner.kl.coef", "learner.rollout.max_new_tokens", "learner.optimizer.learning_rate", "task.eval_prompts"} <= set(PATHS)


@settings(max_examples=300, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow])
@given(path=st.sampled_from(PATHS), value=st.sampled_from(BAD_VALUES))
def test_a_bad_override_builds_or_fails_naming_the_field(path, value):
    config = configs.smoke()
    _set(config, path, value)
    try:
        fdl.build(config)
    except (TypeError, ValueError) as error:
        field = path.split(".")[-1]
        assert field in str(error), f"set:{path}={value!r}: {type(error).__name__}: {error}"


def test_an_unknown_field_is_refused_naming_the_valid_ones():
    config = configs.smoke()
    with pytest.raises(AttributeError, match="learning_rte"):
        config.learner.optimizer.learning_rte = 1e-3
    with pytest.raises(ValueError, match="unknown field learner.kl.cof of KLConfig; valid: coef, placement, target, horizon"):
        nested.replace(fdl.build(config), {"learner.kl.cof": 0.1})


@pytest.mark.parametrize("mesh, message", [
    (MeshSpec(data=3), "needs 3 devices but 8 are available"),
    (MeshSpec(data=-1, fsdp=3), "8 devices are not divisible by the product 3"),
    (MeshSpec(data=0), "mesh axis sizes must be positive"),
])
def test_a_mesh_the_devices_cannot_fill_is_refused_before_anything_runs(tmp_path, mesh, message):
    experiment = dataclasses.replace(fdl.build(configs.smoke()), mesh=mesh)
    with pytest.raises(ValueError, match=message):
        Pipeline(experiment, tmp_path)
    assert not any(tmp_path.iterdir())  # nothing written
