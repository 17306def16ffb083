"""Every package of ``alignment`` exports its public API: ``__all__`` lists names that resolve."""

import importlib
import pkgutil

import pytest

import alignment

PACKAGES = sorted(m.name for m in pkgutil.iter_modules(alignment.__path__, "alignment.") if m.ispkg)


@pytest.mark.parametrize("name", PACKAGES)
def test_package_exports_its_api(name):
    package = importlib.import_module(name)
    exported = getattr(package, "__all__", None)
    assert exported, f"{name} has no __all__"
    missing = [n for n in exported if not hasattr(package, n)]
    assert not missing, f"{name}.__all__ names {missing}, which it does not define"


def test_training_exports_the_trainers_and_their_building_blocks():
    from alignment import training

    assert {"RewardModelTrainer", "RewardTrainConfig", "Checkpoints", "MetricsWriter", "preference_loss",
            "make_train_step", "sft_loss", "fit_linear_head"} <= set(training.__all__)
