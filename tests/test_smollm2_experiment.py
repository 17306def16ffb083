"""A pretrained model on real preference files (``PretrainedTask``), checked on a tiny random
decoder in place of SmolLM2: prompts split, deduplicated and length-filtered with every drop
counted, proxy and judge pairs from disjoint splits, the judge trained once and cached, and
clear errors. No test here runs SmolLM2 (``fiddler:cpu_check`` is the manual check of that).
"""

import json
from pathlib import Path

import fiddle as fdl
import numpy as np
import pytest
from flax import nnx

from alignment import configs, data, evaluation, sandbox
from alignment.experiment import Experiment, Pipeline, PretrainedTask, RewardModelSpec, RunSpec, prepare_task
from alignment.experiment import reward_models, tasks
from alignment.models import Decoder, get_config
from alignment.models.loaders.checkpoint import save_params
from alignment.sandbox.tokenizer import CHATML_TEMPLATE, IM_END, IM_START, PAD
from alignment.rl import LearnerConfig, OptimizerConfig, RolloutConfig
from alignment.training.reward_model import RewardTrainConfig

MAX_PROMPT = 48  # tokens of the word-level tokenizer: some HH dialogues are longer
ROLLOUT = RolloutConfig(max_prompt_length=MAX_PROMPT)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """A tiny random decoder saved as Orbax parameters and a Hugging Face tokenizer directory
    (the sandbox's word-level tokenizer with a ChatML template): ``(weights, tokenizer, vocab)``."""
    root = tmp_path_factory.mktemp("tiny")
    tokenizer = sandbox.sandbox_tokenizer()
    (root / "tokenizer").mkdir()
    tokenizer.save(root / "tokenizer" / "tokenizer.json")
    (root / "tokenizer" / "tokenizer_config.json").write_text(json.dumps(
        {"eos_token": IM_END, "bos_token": IM_START, "pad_token": PAD, "chat_template": CHATML_TEMPLATE}))
    model = Decoder(get_config("tiny", vocab_size=tokenizer.vocab_size), rngs=nnx.Rngs(0))
    save_params(model, root / "weights")
    return root / "weights", root / "tokenizer", tokenizer.vocab_size


def tiny_task(tiny, data_dir, **fields) -> PretrainedTask:
    weights, tokenizer, vocab = tiny
    defaults = dict(model="tiny", decoder_overrides={"vocab_size": vocab}, weights=str(weights), tokenizer=str(tokenizer),
                    data_dir=str(data_dir), reward_pairs=24, judge_pairs=16, alignment_prompts=12, eval_prompts=6)
    return PretrainedTask(**{**defaults, **fields})


def test_the_task_splits_prompts_and_pairs_by_prompt_and_counts_every_drop(tiny, shared_data, monkeypatch, tmp_path):
    monkeypatch.setattr(tasks, "reward_stream", lambda records, tokenizer: records)  # the pairs each model trains on
    task = tiny_task(tiny, shared_data)
    built = prepare_task(task, rollout=ROLLOUT)
    assert built.properties == ("helpful", "harmless") and built.judge is None

    records = {prop: data.load_shared(shared_data / path, fmt, prop).records for prop, fmt, path in task.files}
    split_of = {r.context_key(): data.assign_split(r.context_key()) for rs in records.values() for r in rs}

    def key(chat):  # PreferenceRecord.context_key of a chat
        return json.dumps([[m["role"], m["content"]] for m in chat], ensure_ascii=False)

    def length(chat):
        return len(built.tokenizer.encode(built.tokenizer.apply_chat_template(chat)))

    # Proxies train on "reward_train" pairs, the judge on "reward_eval" pairs: no prompt in both.
    for prop in built.properties:
        proxy, judge = built.reward_batches[prop], built.judge_batches[prop]
        assert (len(proxy), len(judge)) == (24, 16)
        assert {split_of[r.context_key()] for r in proxy} == {"reward_train"}
        assert {split_of[r.context_key()] for r in judge} == {"reward_eval"}
        assert proxy == [r for r in records[prop] if split_of[r.context_key()] == "reward_train"][:24]  # file order

    # Prompts: distinct, from their split, short enough, one property then the other.
    for chats, split, count in ((built.alignment_chats, "policy", 12), (built.eval_chats, "eval", 6)):
        keys = [key(chat) for chat in chats]
        assert len(set(keys)) == len(keys) == count
        assert {split_of[k] for k in keys} == {split}
        assert max(map(length, chats)) <= MAX_PROMPT
    helpful = {r.context_key() for r in records["helpful"]}
    assert [key(chat) in helpful for chat in built.alignment_chats[:4]] == [True, False, True, False]

    # Every prompt of a split is either kept or counted as too long.
    for prop in built.properties:
        for split in ("policy", "eval"):
            contexts = {r.context_key(): r.messages() for r in records[prop] if split_of[r.context_key()] == split}
            too_long = sum(length(chat) > MAX_PROMPT for chat in contexts.values())
            assert built.summary["properties"][prop][f"{split}_prompts"] == {"distinct": len(contexts), "too_long": too_long}
    assert built.summary["properties"]["harmless"]["policy_prompts"]["too_long"] > 0
    helpful_summary = built.summary["properties"]["helpful"]
    assert helpful_summary["skipped"]["identical_responses"] > 0  # counted, not silently dropped
    assert helpful_summary["kept"] + sum(helpful_summary["skipped"].values()) == helpful_summary["lines"]

    # The report says what was dropped.
    report = evaluation.write_report({"properties": list(built.properties), "runs": [], "data": built.summary}, tmp_path)
    dropped = built.summary["properties"]["harmless"]["policy_prompts"]["too_long"]
    assert f"({dropped} over {MAX_PROMPT} tokens, dropped)" in report["report"].read_text()
    assert json.loads(report["results"].read_text())["data"] == built.summary


def test_the_judge_is_a_reward_model_trained_once_and_kept(tiny, shared_data, tmp_path, monkeypatch):
    experiment = Experiment(
        "tiny", tiny_task(tiny, shared_data), runs=[RunSpec("a", "A")], learner=LearnerConfig(rollout=ROLLOUT),
        reward_models=RewardModelSpec(batch_size=4, train_max_length=64, max_length=96,
                                      train=RewardTrainConfig(optimizer=OptimizerConfig(learning_rate=1e-3, schedule="cosine"), num_steps=2)),
    )
    task = Pipeline(experiment, tmp_path, progress=False).task
    assert "held-out Bradley-Terry" in task.judge_name and "helpful 16, harmless 16" in task.judge_name
    scores = task.judge(task.eval_chats[:3], ["Yes.", "No.", "Maybe."])
    assert scores.shape == (3, 2) and np.isfinite(scores).all()
    assert (tmp_path / "reward_models" / "judge").is_dir()

    monkeypatch.setattr(reward_models, "RewardModelTrainer", lambda *a, **k: pytest.fail("the judge was trained again"))
    again = Pipeline(experiment, tmp_path, progress=False).task
    np.testing.assert_allclose(again.judge(task.eval_chats[:3], ["Yes.", "No.", "Maybe."]), scores, rtol=1e-5)


@pytest.fixture
def pairs_dir(tmp_path):
    """A data directory with one small file per property (``prompt_pairs``), no shared data needed."""
    for prop in ("helpful", "harmless"):
        lines = [{"prompt": f"Question {i} about {prop}?", "chosen": "A good answer.", "rejected": "No."} for i in range(200)]
        (tmp_path / f"{prop}.jsonl").write_text("\n".join(map(json.dumps, lines)) + "\n")
    return tmp_path


FILES = (("helpful", "prompt_pairs", "helpful.jsonl"), ("harmless", "prompt_pairs", "harmless.jsonl"))


def test_missing_data_and_unknown_formats_fail_before_the_model_loads(tiny, tmp_path, monkeypatch):
    monkeypatch.setattr(tasks, "load_pretrained", lambda *a, **k: pytest.fail("loaded the model"))
    with pytest.raises(FileNotFoundError, match=rf"preference file not found: {tmp_path}/hh-rlhf.*ALIGNMENT_SHARED_DATA"):
        prepare_task(tiny_task(tiny, tmp_path, files=(("harmless", "hh", "hh-rlhf/harmless-base-test.jsonl.gz"),)), rollout=ROLLOUT)
    (tmp_path / "x.jsonl").write_text("{}\n")
    with pytest.raises(KeyError, match=r"unknown preference format 'alpaca'; valid formats: \['alpaca_eval', 'hh', 'prompt_pairs'\]"):
        prepare_task(tiny_task(tiny, tmp_path, files=(("helpful", "alpaca", "x.jsonl"),)), rollout=ROLLOUT)


def test_the_data_directory_defaults_to_the_environment(tmp_path, monkeypatch):
    monkeypatch.setenv("ALIGNMENT_SHARED_DATA", str(tmp_path))
    assert data.data_dir() == tmp_path and data.data_dir("/elsewhere") == Path("/elsewhere")


def test_bad_weights_tokenizers_splits_and_counts_are_named(tiny, pairs_dir):
    with pytest.raises(FileNotFoundError, match=f"weights not found: {pairs_dir / 'nowhere'}"):
        prepare_task(tiny_task(tiny, pairs_dir, files=FILES, weights=str(pairs_dir / "nowhere")), rollout=ROLLOUT)
    with pytest.raises(ValueError, match="not a GGUF file, a Hugging Face checkpoint"):
        prepare_task(tiny_task(tiny, pairs_dir, files=FILES, weights=str(pairs_dir)), rollout=ROLLOUT)
    with pytest.raises(ValueError, match="hold no tokenizer; set PretrainedTask.tokenizer"):
        prepare_task(tiny_task(tiny, pairs_dir, files=FILES, tokenizer=None), rollout=ROLLOUT)
    (pairs_dir / "hf").mkdir()
    (pairs_dir / "hf" / "config.json").write_text(json.dumps({
        "model_type": "llama", "vocab_size": 100, "hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 4,
        "num_key_value_heads": 2, "intermediate_size": 128, "tie_word_embeddings": True}))
    with pytest.raises(ValueError, match=r"hf does not have the shape of preset 'tiny': embed_dim=32 \(preset: 64\), head_dim=8 \(preset: 16\)$"):
        prepare_task(tiny_task(tiny, pairs_dir, files=FILES, weights=str(pairs_dir / "hf")), rollout=ROLLOUT)  # before any tensor is read
    with pytest.raises(ValueError, match=r"splits lacks \['reward_eval'\]"):
        tiny_task(tiny, pairs_dir, files=FILES, splits={"reward_train": 0.5, "policy": 0.4, "eval": 0.1})
    with pytest.raises(ValueError, match=r"'policy' split has \d+ prompts that fit \(helpful \d+, harmless \d+\); the task asks for 1000"):
        prepare_task(tiny_task(tiny, pairs_dir, files=FILES, alignment_prompts=1000), rollout=ROLLOUT)


def test_the_cpu_check_shrinks_the_smollm2_experiment():
    config = configs.smollm2_helpful_harmless()
    full = fdl.build(config)
    configs.cpu_check(config)
    check = fdl.build(config)
    assert isinstance(full.task, PretrainedTask) and full.learner.rollout == RolloutConfig(max_prompt_length=128, max_new_tokens=96)
    assert {(r.label, r.algorithm) for r in full.runs} == {(label, "rloo") for label in ("LSC AND", "raw sum")}
    assert len({r.kl_coef for r in full.runs}) == 3
    assert check.reward_models.train.trainable == "head" and check.learner.num_steps == 2
    assert check.learner.rollout == RolloutConfig(max_prompt_length=128, max_new_tokens=16)  # one rollout for every stage
