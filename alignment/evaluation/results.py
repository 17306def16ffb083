"""Reading and writing the results structure (the package docstring defines it): checks, run kinds,
arms, curves, JSON and the per-sample arrays.

Estimates may be ``Estimate`` objects (built in Python) or their JSON dicts (read back from
``results.json``); every reader here accepts both. ``save_results`` writes ``results.json`` with
every numpy array replaced by a marker ``{"array": key, "shape": [...], "dtype": ...}`` and the
arrays into one compressed ``samples.npz`` beside it, keyed by their JSON path (e.g.
``runs/3/checkpoints/2/samples/judge``); ``load_results`` puts them back.
"""

from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

import numpy as np

from alignment import files

from alignment.evaluation.stats import Estimate, as_estimate, frontier

DEFAULT_REFERENCE = {"method": "empirical", "quantile": 0.85}
LSC_UTILITIES = {("lsc", "sum"), ("lsc", "weighted_sum"), ("centered", "lsc_and")}
RAW_UTILITIES = {("identity", "sum"), ("identity", "weighted_sum")}
RESULTS_FILE, SAMPLES_FILE = "results.json", "samples.npz"
_MARKER_KEYS = {"array", "shape", "dtype"}

_RUN_KEYS = ("name", "label", "transform", "aggregator", "algorithm", "kl_coef", "checkpoints")


def validate_results(results: Mapping) -> None:
    """Raise ``ValueError`` naming the first missing required key (``runs[2].checkpoints[0].win_rate``)."""
    for key in ("properties", "runs"):
        if key not in results:
            raise ValueError(f"results lack '{key}'")
    if not results["properties"]:
        raise ValueError("results['properties'] is empty")
    for i, run in enumerate(results["runs"]):
        for key in _RUN_KEYS:
            if key not in run:
                raise ValueError(f"results: runs[{i}] ({run.get('name', '?')}) lacks '{key}'")
        for j, checkpoint in enumerate(run["checkpoints"]):
            for key in ("step", "win_rate"):
                if key not in checkpoint:
                    raise ValueError(f"results: runs[{i}].checkpoints[{j}] ({run['name']}) lacks '{key}'")
    for i, entry in enumerate(results.get("best_of_k") or []):
        for key in ("label", "k", "kl", "win_rate"):
            if key not in entry:
                raise ValueError(f"results: best_of_k[{i}] lacks '{key}'")
    for key in ("pi_0", "gradient_batch"):
        block = results.get(key)
        if block is not None and not isinstance(block, Mapping):
            raise ValueError(f"results['{key}'] must be a dict of arrays, got {type(block).__name__}")
    judge = lookup(results, "pi_0", "judge")
    if judge is not None and np.ndim(judge) != 3:
        raise ValueError(f"results['pi_0']['judge'] must be [prompts, samples, properties], got shape {np.shape(judge)}")


def utility_kind(transform: str | None, aggregator: str | None, normalize: str | None = None) -> str:
    """"lsc" (a sum of LSC terms: the AND of arXiv 2402.00742), "raw" (a sum of raw rewards),
    "group_normalized" (the raw sum of rewards each standardised over its prompt's group of
    samples, ``normalize="group"``: the per-reward normalised sum, as in GDPO-style trainers) or
    "other"."""
    if normalize not in (None, "none"):
        return "group_normalized" if normalize == "group" and (transform, aggregator) in RAW_UTILITIES else "other"
    if (transform, aggregator) in LSC_UTILITIES:
        return "lsc"
    if (transform, aggregator) in RAW_UTILITIES:
        return "raw"
    return "other"


def run_kind(run: Mapping) -> str:
    """``utility_kind`` of a run or best-of-k entry (``"other"`` when it names no transform)."""
    return utility_kind(run.get("transform"), run.get("aggregator"), run.get("normalize"))


def run_seed(run: Mapping) -> int:
    """The run's training seed (0 when it does not say)."""
    seed = run.get("seed")
    return 0 if seed is None else int(seed)


def optimised(run: Mapping, properties: Sequence[str]) -> list[str]:
    """The properties in the run's utility (all of ``properties`` when the run does not say)."""
    return list(run.get("optimised") or properties)


def target(run: Mapping, properties: Sequence[str]) -> str:
    """The win rate a run is judged by: its property for a single-property run, else "and"."""
    names = optimised(run, properties)
    return names[0] if len(names) == 1 else "and"


def reference_variant(run: Mapping) -> tuple[str, float]:
    """(method, quantile) of the run's reference; missing fields take the paper's default (empirical, 0.85)."""
    reference = run.get("reference") or {}
    return str(reference.get("method", DEFAULT_REFERENCE["method"])), float(reference.get("quantile", DEFAULT_REFERENCE["quantile"]))


def has_default_reference(run: Mapping) -> bool:
    """Whether the run's reference is the empirical 0.85 quantile of K base rewards."""
    method, quantile = reference_variant(run)
    return method == DEFAULT_REFERENCE["method"] and math.isclose(quantile, DEFAULT_REFERENCE["quantile"])


def checkpoints(run: Mapping) -> list[Mapping]:
    """The run's checkpoints in step order."""
    return sorted(run["checkpoints"], key=lambda c: c["step"])


def final_checkpoint(run: Mapping) -> Mapping | None:
    """The checkpoint with the largest step (None for a run without checkpoints)."""
    ordered = checkpoints(run)
    return ordered[-1] if ordered else None


def lookup(record: Mapping, *path: str):
    """``record[path[0]][path[1]]...``, or None where any key is missing or the value is null."""
    for key in path:
        if not isinstance(record, Mapping) or record.get(key) is None:
            return None
        record = record[key]
    return record


def estimate_at(record: Mapping, *path: str) -> Estimate | None:
    """The Estimate at ``path`` (None when absent)."""
    value = lookup(record, *path)
    return None if value is None else as_estimate(value)


def curve(runs: Sequence[Mapping], value: Callable[[Mapping], Estimate | None]) -> list[tuple[float, Estimate]]:
    """The ``frontier`` of (KL, value(checkpoint)) over every checkpoint of ``runs`` with a KL and a value."""
    points = []
    for run in runs:
        for checkpoint in run["checkpoints"]:
            kl, y = estimate_at(checkpoint, "kl"), value(checkpoint)
            if kl is not None and y is not None:
                points.append((kl.mean, y))
    return frontier(points)


def proxy_total(checkpoint: Mapping, names: Sequence[str]) -> float | None:
    """Sum of the checkpoint's proxy means over ``names`` (the raw-sum objective); None if any is missing."""
    values = [lookup(checkpoint, "proxy_mean", name) for name in names]
    return None if any(v is None for v in values) else float(sum(values))


def to_jsonable(value):
    """A JSON-safe copy: Estimates (and dataclasses) as dicts, numpy as Python, NaN and inf as None.

    Arrays become nested lists (``save_results`` instead moves them to ``samples.npz``); the
    markers that stand in for them are plain dicts and pass through unchanged.
    """
    if isinstance(value, Estimate):
        return to_jsonable(value.to_json())
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return to_jsonable(dataclasses.asdict(value))
    if isinstance(value, Mapping):
        return {str(k): to_jsonable(v) for k, v in value.items()}
    if isinstance(value, np.ndarray):
        return to_jsonable(value.item()) if value.ndim == 0 else value.tolist() if value.dtype.kind in "biu" else [to_jsonable(v) for v in value]
    if isinstance(value, (list, tuple)):
        return [to_jsonable(v) for v in value]
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    if isinstance(value, (int, np.integer)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        return float(value) if math.isfinite(value) else None
    if isinstance(value, Path):
        return str(value)
    if value is None or isinstance(value, str):
        return value
    raise TypeError(f"to_jsonable: cannot convert {type(value).__name__} to JSON: {value!r}")


def split_arrays(value, path: str = "") -> tuple[object, dict[str, np.ndarray]]:
    """``(tree, arrays)``: ``value`` with every numpy array (at any depth, in dicts or lists)
    replaced by a marker ``{"array": key, "shape": [...], "dtype": str}``, and ``{key: array}``;
    keys are JSON paths such as ``runs/3/checkpoints/2/samples/judge``."""
    arrays: dict[str, np.ndarray] = {}

    def walk(node, where: str):
        if isinstance(node, np.ndarray):
            key = where or "array"
            arrays[key] = node
            return {"array": key, "shape": list(node.shape), "dtype": str(node.dtype)}
        if isinstance(node, Estimate):
            return node
        if isinstance(node, Mapping):
            return {k: walk(v, f"{where}/{k}" if where else str(k)) for k, v in node.items()}
        if isinstance(node, (list, tuple)):
            return [walk(v, f"{where}/{i}" if where else str(i)) for i, v in enumerate(node)]
        return node

    return walk(value, path), arrays


def save_results(results: Mapping, directory: str | Path) -> dict[str, Path]:
    """Write ``results.json`` (everything but arrays, JSON-safe) and, when there are arrays,
    ``samples.npz`` (all of them, compressed, keyed by JSON path) into ``directory``; returns
    ``{"results": path, "samples"?: path}``. ``load_results`` reads them back."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    tree, arrays = split_arrays(results)
    paths = {"results": directory / RESULTS_FILE}
    files.write_text(paths["results"], json.dumps(to_jsonable(tree), separators=(",", ":"), allow_nan=False) + "\n")  # compact: every checkpoint of every run
    samples = directory / SAMPLES_FILE
    if arrays:
        files.write_npz(samples, **arrays)
        paths["samples"] = samples
    elif samples.exists():
        samples.unlink()  # a stale file from an earlier write would not match this results.json
    return paths


def _is_marker(node) -> bool:
    return isinstance(node, Mapping) and set(node) == _MARKER_KEYS and isinstance(node.get("array"), str)


def load_results(directory: str | Path) -> dict:
    """The results written by ``save_results`` (``directory`` or its ``results.json``), with the
    arrays of ``samples.npz`` put back where their markers stand. Results without arrays load as
    they are; a marker whose array is missing (no ``samples.npz``) becomes None, so the claims
    that need it say "not tested"."""
    path = Path(directory)
    if path.is_dir():
        path = path / RESULTS_FILE
    tree = files.read_json(path)
    samples = path.parent / SAMPLES_FILE
    arrays = dict(np.load(samples, allow_pickle=False)) if samples.is_file() else {}

    def walk(node):
        if _is_marker(node):
            return arrays.get(node["array"])
        if isinstance(node, dict):
            return {k: walk(v) for k, v in node.items()}
        if isinstance(node, list):
            return [walk(v) for v in node]
        return node

    return walk(tree)
