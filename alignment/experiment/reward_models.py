"""The experiment's reward models: which kinds it needs, their training, reuse and cache.

Each proxy is fine-tuned from pi_0's backbone into ``workdir/reward_models/<kind>[-<property>]``
with a record of what made it (``<name>.made_with.json``), and is reused from there under the
same config only. With a ``cache`` (the sandbox cache's ``reward_models/`` for sandbox tasks,
on one process), a proxy is also kept under the digest of that record and of the library's
code, so that the experiments of a sweep, and any later experiment with the same task and
reward-model spec, train it once: the first to need it trains it under a file lock, the others
wait and copy it.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Sequence
from pathlib import Path

import filelock
import jax
import numpy as np
from flax import nnx

from alignment.experiment.outputs import copy_module, write_json
from alignment.files import DamagedFileError, json_default, read_json
from alignment.experiment.spec import Experiment, RewardModelSpec
from alignment.experiment.tasks import RewardBatches, TaskData
from alignment.models.decoder import Decoder
from alignment.models.heads import GPMModel, RewardModel
from alignment.models.loaders.checkpoint import restore_params, save_params
from alignment.rl.reference import fingerprint
from alignment.rl.scoring import Chat, GPMReward, ModelReward
from alignment.sandbox.build import code_digest
from alignment.training.reward_model import RewardModelTrainer

Proxies = dict[str, list]

def reward_model_kinds(experiment: Experiment, properties: Sequence[str]) -> dict[str, tuple[str, ...]]:
    """``{kind: properties}`` the proxies must cover: Bradley-Terry for every property (best-of-k
    and the evaluation read it), a GPM for each property a GPM run optimises, and one for the
    first property when ``experiment.gpm_checks`` asks for the GPM claims without a GPM run."""
    kinds = {"bt": tuple(properties)}
    gpm = [p for run in experiment.runs if run.reward_model == "gpm" for p in (run.properties or properties)]
    if experiment.gpm_checks and not gpm:
        gpm = [properties[0]]
    if gpm:
        kinds["gpm"] = tuple(p for p in properties if p in gpm)
    return kinds


def train_reward_models(experiment: Experiment, task: TaskData, directory: Path, mesh=None, progress: bool = True,
                        cache: Path | None = None) -> Proxies:
    """The proxies by kind: one BT model with a head per property; one GPM per property. Each is
    fine-tuned from pi_0's backbone, or restored from ``directory`` (or ``cache``, module
    docstring) when it was trained before."""
    spec = experiment.reward_models
    proxies: Proxies = {}
    for kind, properties in reward_model_kinds(experiment, task.properties).items():
        groups = [properties] if kind == "bt" else [(p,) for p in properties]
        proxies[kind] = []
        for group in groups:
            path = directory / (kind if kind == "bt" else f"gpm-{group[0]}")
            model = fit_reward_model(kind, task.policy, group, spec, task.reward_batches, path, mesh=mesh, progress=progress,
                                     pairs_from={"task": experiment.task, "rollout": experiment.learner.rollout}, cache=cache)
            if kind == "bt":
                proxies[kind].append(ModelReward(model, task.tokenizer, group, max_length=spec.max_length, mesh=mesh))
            else:
                proxies[kind].append(GPMReward(model, task.tokenizer, group[0], max_length=spec.max_length, mesh=mesh))
    return proxies


def fit_reward_model(kind: str, policy: Decoder, properties: Sequence[str], spec: RewardModelSpec, batches: RewardBatches,
                     path: Path, mesh=None, progress: bool = True, pairs_from=None, cache: Path | None = None) -> nnx.Module:
    """A ``kind`` model on a copy of ``policy``'s backbone judging ``properties``: restored from
    ``path`` when it was trained before, else trained on ``batches(spec, properties)`` (or copied
    from ``cache``) and saved there. ``pairs_from``: the configs the pairs come from by name (the
    task and the rollout that sampled them; part of the provenance a reuse checks; without it
    nothing is cached, as the pairs are not named)."""
    model = _reward_model(kind, policy, len(properties), spec)
    plain = nnx.eval_shape(lambda: model)  # what is stored: with LoRA, the adapters merged in
    made_with = {"kind": kind, "properties": list(properties), "spec": dataclasses.asdict(spec), "policy": fingerprint(policy),
                 **{name: dataclasses.asdict(config) for name, config in (pairs_from or {}).items()}}
    record = path.parent / f"{path.name}.made_with.json"
    if path.is_dir():
        try:
            check_made_with(record, made_with)
            return restore_params(plain, path, mesh=mesh)
        except DamagedFileError as error:  # never trusted: the model is trained again
            print(f"[experiment] {error}: training {path.name} again", flush=True)
            shutil.rmtree(path)
    def train() -> nnx.Module:
        trainer = RewardModelTrainer(model, dataclasses.replace(spec.train, objective=kind), properties=properties, mesh=mesh)
        trainer.fit(batches(spec, properties), progress=progress)
        return trainer.merged_model()  # LoRA adapters folded in: the stored model is a plain one

    if cache is None or pairs_from is None or jax.process_count() > 1:  # processes with caches of their own could disagree
        model = train()
        save_params(model, path)
    else:
        entry = _cached(cache, made_with, mesh, train)
        path.parent.mkdir(parents=True, exist_ok=True)
        shutil.copytree(entry, path)
        model = restore_params(plain, path, mesh=mesh)
    write_json(record, made_with)
    return model


def _cached(cache: Path, made_with: dict, mesh, train) -> Path:
    """The cache entry of the model ``made_with`` describes, trained by ``train()`` and stored
    (under a lock; written beside the entry, then renamed) if it is not there yet."""
    layout = None if mesh is None else dict(mesh.shape)
    key = json.dumps({"made_with": made_with, "code": code_digest(), "mesh": layout}, sort_keys=True, default=json_default)
    entry = Path(cache) / hashlib.sha256(key.encode()).hexdigest()[:16]
    entry.parent.mkdir(parents=True, exist_ok=True)
    with filelock.FileLock(entry.parent / f".{entry.name}.lock"):
        if not entry.is_dir():
            temporary = Path(tempfile.mkdtemp(prefix=f".{entry.name}-", dir=entry.parent))
            try:
                save_params(train(), temporary / "params")
                os.rename(temporary / "params", entry)
            finally:
                shutil.rmtree(temporary, ignore_errors=True)
    return entry


def check_made_with(record: Path, made_with: dict) -> None:
    """A stage's output is reused only with the config that made it (``record`` holds that
    config); otherwise a ``ValueError`` names the fields that differ."""
    if not record.is_file():
        raise ValueError(f"{record.parent} holds outputs without {record.name}: they cannot be checked against this config; "
                         "use a new workdir or delete them")
    stored, current = read_json(record), json.loads(json.dumps(made_with, default=json_default))
    differ = sorted(_differences(stored, current))
    if differ:
        raise ValueError(f"{record.parent} was made with another config (differs at {', '.join(differ[:8])}); "
                         "use a new workdir or delete it to recompute")


def _differences(a, b, path: str = "") -> list[str]:
    if isinstance(a, dict) and isinstance(b, dict):
        return [d for key in sorted(set(a) | set(b)) for d in _differences(a.get(key), b.get(key), f"{path}.{key}" if path else key)]
    return [] if a == b else [path or "(all)"]


def train_judge(experiment: Experiment, task: TaskData, directory: Path, mesh=None, progress: bool = True) -> RewardJudge:
    """The judge of a task without one (``TaskData.judge is None``): a Bradley-Terry model with a
    head per property, trained like the proxies on ``task.judge_batches`` (or restored from ``directory``)."""
    spec = experiment.reward_models
    model = fit_reward_model("bt", task.policy, task.properties, spec, task.judge_batches, directory, mesh=mesh, progress=progress)
    return RewardJudge(ModelReward(model, task.tokenizer, task.properties, max_length=spec.max_length, mesh=mesh))


class RewardJudge:
    """A Bradley-Terry reward model as a task's judge: ``judge(chats, texts) -> [N, P]`` rewards."""

    def __init__(self, reward: ModelReward):
        self.reward = reward

    def __call__(self, chats: Sequence[Chat], texts: Sequence[str]) -> np.ndarray:
        scores = self.reward(chats, texts)
        return np.stack([np.asarray(scores[p], np.float32) for p in self.reward.properties], axis=-1)


def _reward_model(kind: str, policy: Decoder, num_properties: int, spec: RewardModelSpec) -> nnx.Module:
    rngs = nnx.Rngs(spec.seed)
    if kind == "bt":
        return RewardModel(copy_module(policy), num_properties=num_properties, rngs=rngs)
    return GPMModel(copy_module(policy), num_blocks=spec.gpm_dim, rngs=rngs)


