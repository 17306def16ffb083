"""TPU-pod readiness on 8 simulated devices: the tpu_pod presets build and their learner programs
lower without weights (the real Llama 3.2 1B and Llama 3 8B shapes, all layers: lowering only
traces, it allocates nothing), and sharded loading puts on every device only its shard."""

import contextlib
import dataclasses
import json
import math
import re
import subprocess
import types
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx
from flax.traverse_util import flatten_dict
from safetensors.numpy import save_file

from alignment.experiment import MeshSpec
from alignment.models import Decoder, get_config
from alignment.models.loaders import hf
from alignment.models.loaders.checkpoint import restore_params, save_params
from alignment.models.loaders.convert import hf_tensor_name
from alignment.parallel import make_mesh
from alignment.rl import ALGORITHMS, LearnerConfig, RolloutConfig
from alignment.rl.lowering import lower_learner
from alignment.configs import tpu_pod

ROOT = Path(__file__).resolve().parents[1]

pytestmark = pytest.mark.skipif(jax.device_count() < 8, reason="needs 8 (simulated) devices")

# A small Llama whose every sharded dimension divides a 2 x 2 x 2 mesh; untied, so lm_head is read too.
HF_CONFIG = {"model_type": "llama", "vocab_size": 64, "hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 4,
             "num_key_value_heads": 2, "intermediate_size": 48, "tie_word_embeddings": False}


def _torch_shapes(c: dict) -> dict[str, tuple[int, ...]]:
    d, f, hd = c["hidden_size"], c["intermediate_size"], c["hidden_size"] // c["num_attention_heads"]
    q, kv = c["num_attention_heads"] * hd, c["num_key_value_heads"] * hd
    shapes = {"model.embed_tokens.weight": (c["vocab_size"], d), "model.norm.weight": (d,), "lm_head.weight": (c["vocab_size"], d)}
    for i in range(c["num_hidden_layers"]):
        layer = {"input_layernorm": (d,), "post_attention_layernorm": (d,), "self_attn.q_proj": (q, d),
                 "self_attn.k_proj": (kv, d), "self_attn.v_proj": (kv, d), "self_attn.o_proj": (d, q),
                 "mlp.gate_proj": (f, d), "mlp.up_proj": (f, d), "mlp.down_proj": (d, f)}
        shapes.update({f"model.layers.{i}.{name}.weight": shape for name, shape in layer.items()})
    return shapes


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    """Random bfloat16 weights (the dtype of Llama releases) in two safetensors files with an index."""
    directory = tmp_path_factory.mktemp("llama")
    (directory / "config.json").write_text(json.dumps(HF_CONFIG))
    rng = np.random.default_rng(0)
    tensors = {name: rng.normal(size=shape).astype(jnp.bfloat16) for name, shape in _torch_shapes(HF_CONFIG).items()}
    files = {name: f"model-0000{1 + ('layers.1.' in name)}-of-00002.safetensors" for name in tensors}
    for file in set(files.values()):
        save_file({name: t for name, t in tensors.items() if files[name] == file}, str(directory / file))
    (directory / "model.safetensors.index.json").write_text(json.dumps({"weight_map": files}))
    return directory


def _params(model) -> dict[str, jax.Array]:
    return flatten_dict(nnx.to_pure_dict(nnx.state(model, nnx.Param)), sep="/")


def _assert_each_device_holds_its_shard(loaded, expected):
    sharded = 0
    for path, x in _params(loaded).items():
        shard_shape = x.sharding.shard_shape(x.shape)
        assert {s.data.shape for s in x.addressable_shards} == {shard_shape}, path
        sharded += shard_shape != x.shape
        np.testing.assert_array_equal(np.asarray(x), np.asarray(expected[path]), err_msg=path)
    assert sharded >= 9  # embed, lm_head and the 7 layer matrices are split on this mesh


class SliceSpy:
    """A safetensors ``get_slice`` handle that records the shape of every block read through it."""

    def __init__(self, tensor, name: str, reads: dict):
        self.tensor, self.name, self.reads = tensor, name, reads

    def get_shape(self):
        return self.tensor.get_shape()

    def __getitem__(self, index):
        block = self.tensor[index]
        self.reads.setdefault(self.name, []).append(block.shape)
        return block


def spying(safe_open, reads: dict):
    """``safe_open`` whose files hand out ``SliceSpy`` handles."""

    @contextlib.contextmanager
    def open_file(*args, **kwargs):
        with safe_open(*args, **kwargs) as f:
            yield types.SimpleNamespace(keys=f.keys, get_slice=lambda name: SliceSpy(f.get_slice(name), name, reads))

    return open_file


def test_sharded_safetensors_loading_reads_only_each_devices_block(checkpoint, monkeypatch):
    dense = hf.load_hf(checkpoint)
    reads = {}
    monkeypatch.setattr(hf, "safe_open", spying(hf.safe_open, reads))
    loaded = hf.load_hf_sharded(checkpoint, make_mesh(data=2, fsdp=2, model=2))
    _assert_each_device_holds_its_shard(loaded.model, _params(dense.model))
    assert loaded.config == dense.config
    shapes = _torch_shapes(HF_CONFIG)
    for path, x in _params(loaded.model).items():
        *parents, name = path.split("/")
        shard = x.sharding.shard_shape(x.shape)
        block = shard[1:] if parents else shard  # stacked layers: each layer's tensor is read on its own
        distinct = {str(index) for index in x.sharding.devices_indices_map(x.shape).values()}
        for tensor in (hf_tensor_name(name, layer) for layer in (range(x.shape[0]) if parents else [None])):
            assert [math.prod(shape) for shape in reads[tensor]] == [math.prod(block)] * len(distinct), (tensor, reads[tensor])
            if shard != x.shape:
                assert math.prod(block) < math.prod(shapes[tensor]), f"{tensor} was read whole"


def test_sharded_loading_names_missing_and_misshaped_tensors(tmp_path):
    (tmp_path / "config.json").write_text(json.dumps(HF_CONFIG))
    shapes = _torch_shapes(HF_CONFIG)
    tensors = {name: np.zeros(shape, np.float32) for name, shape in shapes.items() if name != "lm_head.weight"}
    tensors["model.layers.1.mlp.up_proj.weight"] = np.zeros((4, 4), np.float32)
    save_file(tensors, str(tmp_path / "model.safetensors"))
    with pytest.raises(ValueError, match="tensors do not fit the model") as error:
        hf.load_hf_sharded(tmp_path, make_mesh(data=2, fsdp=2, model=2))
    assert "missing lm_head.weight" in str(error.value)
    assert "model.layers.1.mlp.up_proj.weight: shape (4, 4) != expected (48, 32)" in str(error.value)


def test_orbax_restore_places_each_shard(checkpoint, tmp_path):
    dense = hf.load_hf(checkpoint)
    save_params(dense.model, tmp_path / "params")
    abstract = nnx.eval_shape(lambda: Decoder(dense.config, rngs=nnx.Rngs(0)))
    restored = restore_params(abstract, tmp_path / "params", mesh=make_mesh(data=2, fsdp=2, model=2))
    _assert_each_device_holds_its_shard(restored, _params(dense.model))


def _lowered_arguments(lowered) -> list[tuple[tuple[int, ...], tuple[tuple[str, ...], ...]]]:
    """``(shape, mesh axes of each dimension)`` of every argument of the lowered program (its
    StableHLO ``main`` signature with Shardy sharding annotations)."""
    text = lowered.as_text()
    signature = text[text.index("func.func public @main(") :].split("\n", 1)[0]
    arguments = []
    for shape, dims in re.findall(r"%arg\d+: tensor<([^>]*)>[^%]*?sdy\.sharding<@mesh, \[(.*?)\]>", signature):
        axes = tuple(tuple(re.findall(r'"(\w+)"', dim)) for dim in re.findall(r"\{([^}]*)\}", dims))
        arguments.append((tuple(int(n) for n in shape.split("x")[:-1]), axes))
    return arguments


def _mesh_axes(spec, ndim: int) -> tuple[tuple[str, ...], ...]:
    entries = [() if e is None else (e,) if isinstance(e, str) else tuple(e) for e in spec]
    return tuple(entries + [()] * (ndim - len(entries)))


@pytest.mark.parametrize("preset, model_axis", [("tpu_pod_1b", 1), ("tpu_pod_8b", 2)])
def test_tpu_pod_presets_build_and_lower_on_8_devices(preset, model_axis):
    config = getattr(tpu_pod, preset)()
    lowered = tpu_pod.validate(config)  # the preset's layout shrunk to the 8 devices
    assert set(lowered) == {"rloo"}
    labels = {run.label for run in config.runs}
    assert labels == {"LSC AND", "raw sum"}
    program = lowered["rloo"]
    assert f'"model"={model_axis}' in program.update.as_text()
    params = program.parameters
    # FSDP shards the large matrices (embed over fsdp), never replicates them.
    for path in ("policy/embed", "policy/layers/gate", "policy/layers/down", "policy/layers/q"):
        assert "fsdp" in jax.tree.leaves(tuple(params[path][1])), path
    if model_axis > 1:
        assert "model" in jax.tree.leaves(tuple(params["policy/layers/q"][1]))
    # The lowered update receives every parameter (and its two Adam moments) at the rules' sharding.
    arguments = _lowered_arguments(program.update)
    for path, (shape, spec) in params.items():
        assert arguments.count((shape, _mesh_axes(spec, len(shape)))) >= 3, path
    assert program.sample.as_text() and program.reference.as_text()


def test_shrink_keeps_the_kinds_of_parallelism():
    assert tpu_pod.shrink(MeshSpec(data=2, fsdp=8, model=2), 8) == MeshSpec(2, 2, 2)
    assert tpu_pod.shrink(MeshSpec(data=4, fsdp=4, model=1), 8) == MeshSpec(2, 4, 1)
    with pytest.raises(ValueError, match="explicit axis sizes"):
        tpu_pod.shrink(MeshSpec(data=-1, fsdp=2), 8)
    with pytest.raises(ValueError, match="halving data=3"):
        tpu_pod.shrink(MeshSpec(data=3, fsdp=2, model=2), 8)


ROLLOUT = RolloutConfig(max_prompt_length=16, max_new_tokens=8)


def test_ppo_lowers_with_a_shared_or_separate_value_model():
    mesh = make_mesh(data=2, fsdp=2, model=2)
    decoder = get_config("tiny")
    config = LearnerConfig(algorithm="ppo", prompts_per_step=4, num_samples=2, rollout=ROLLOUT)
    with pytest.raises(ValueError, match="ppo needs a value model.*shared, separate"):
        lower_learner(decoder, config, mesh)
    shared = lower_learner(decoder, config, mesh, value="shared").parameters
    separate = lower_learner(decoder, config, mesh, value="separate").parameters
    assert "value/kernel" in shared and not any(p.startswith("value/backbone") for p in shared)
    assert separate["value/backbone/layers/q"] == separate["policy/layers/q"]


@pytest.mark.parametrize("algorithm", [name for name in ALGORITHMS.names if name != "ppo"])
def test_every_algorithm_lowers(algorithm):
    """The update program of each registered algorithm lowers on the 8-device mesh. GSPO's differs
    from GRPO's (the sequence ratio); Dr. GRPO's and DAPO's do not (their advantages and token
    weights are inputs of the update), but DAPO's clip-higher makes its program differ."""
    mesh = make_mesh(data=2, fsdp=2, model=2)
    config = LearnerConfig(algorithm=algorithm, prompts_per_step=4, num_samples=2, rollout=ROLLOUT, epochs=2, minibatches=2,
                           microbatches=2)
    lowered = lower_learner(get_config("tiny"), config, mesh)
    text = lowered.update.as_text()
    assert "stablehlo" in text and not any(path.startswith("value") for path in lowered.parameters)
    grpo = lower_learner(get_config("tiny"), dataclasses.replace(config, algorithm="grpo"), mesh).update.as_text()
    assert (text != grpo) == (algorithm in ("gspo", "dapo")), algorithm


def test_the_cloud_tpu_scripts_parse_and_start_every_worker_distributed():
    scripts = sorted((ROOT / "launch" / "tpu").glob("*.sh"))
    assert {p.name for p in scripts} == {"common.sh", "create.sh", "run.sh", "fetch.sh", "delete.sh"}
    for script in scripts:
        subprocess.run(["bash", "-n", str(script)], check=True)
    assert "ALIGNMENT_AUTO_DISTRIBUTED=1 python3 launch/train.py" in (ROOT / "launch" / "tpu" / "run.sh").read_text()
