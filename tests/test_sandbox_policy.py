"""Gold-reward sandbox, model side: the SFT step, the base policy's fluency and variety, the cache.

Cache hits are asserted by counting builds (calls of the SFT trainer), not by timing; how long a
build and a cache hit take is measured by ``benchmarks/sandbox_build.py``. The cache tests pin
the key's source digest (``build.code_digest``): the key hashes every module of the package
(tests/test_sandbox_cache.py), so an edit to any module while the tests run would otherwise
turn a hit into a miss.
"""

import dataclasses
import json

import jax
import numpy as np
import optax
import pytest
from flax import nnx

from alignment import sandbox
from alignment.sandbox import build, gold
from alignment.models import Decoder, get_config
from alignment.training import sft

QUICK = sandbox.SandboxConfig(policy=sandbox.PolicyConfig(steps=2, warmup_steps=1, short_length=128))


@pytest.fixture
def builds(monkeypatch):
    """The number of sandbox builds so far in this test: calls of the base policy's SFT trainer."""
    calls = []
    train_policy = build.train_policy

    def counted(*args, **kwargs):
        calls.append(1)
        return train_policy(*args, **kwargs)

    monkeypatch.setattr(build, "train_policy", counted)
    return lambda: len(calls)


@pytest.fixture(scope="session")
def eval_samples(box):
    prompts = box.splits["eval"][:64] + box.splits["policy"][:64]
    return prompts, box.sample(prompts, jax.random.key(0))


def test_sft_loss_ignores_prompt_and_padding_and_the_step_lowers_it():
    tokenizer = sandbox.sandbox_tokenizer()
    model = Decoder(get_config("tiny", vocab_size=tokenizer.vocab_size), rngs=nnx.Rngs(0))
    example = sft.encode_example(tokenizer, [{"role": "user", "content": "How do I cook rice?"}], "Good question.")
    assert example[1] == [False] * 11 + [True] * 4  # targets: "Good question ." and the end of turn
    batch = sft.make_batch([example, example], 24, tokenizer.pad_id)
    padding_changed = batch._replace(tokens=np.where(batch.valid, batch.tokens, 5))
    loss, metrics = sft.sft_loss(model, batch)
    assert float(metrics["tokens"]) == 8 and np.isclose(loss, np.log(tokenizer.vocab_size), rtol=0.05)
    np.testing.assert_allclose(sft.sft_loss(model, padding_changed)[0], loss, rtol=1e-6)
    optimizer = nnx.Optimizer(model, optax.adam(1e-2), wrt=nnx.Param)
    for _ in range(5):
        sft.train_step(model, optimizer, batch)
    assert sft.sft_loss(model, batch)[0] < loss - 1.0
    with pytest.raises(ValueError, match="longer than the batch length"):
        sft.make_batch([example], 8, tokenizer.pad_id)


def test_base_policy_trained_and_fluent(box, eval_samples):
    prompts, texts = eval_samples
    assert box.train_log["final_loss"] < 0.6
    sentences = [s for t in texts for s in gold.split_sentences(t)]
    in_bank = [s in sandbox.SENTENCES for s in sentences]
    assert np.mean(in_bank) > 0.75, [s for s, ok in zip(sentences, in_bank) if not ok][:10]
    topical = [
        sandbox.SENTENCES[s].topic == p.topic.name
        for p, t in zip(prompts, texts)
        for s in gold.split_sentences(t)
        if sandbox.SENTENCES.get(s, sandbox.Sentence("")).kind in ("detail", "hazard")
    ]
    assert np.mean(topical) > 0.75


def test_base_policy_samples_vary_in_both_properties(eval_samples):
    prompts, texts = eval_samples
    utilities = [sandbox.gold_utilities(p.text, t) for p, t in zip(prompts, texts)]
    helpful = np.array([u["helpful"] for u in utilities])
    harmless = np.array([u["harmless"] for u in utilities])
    assert helpful.std() > 0.5 and harmless.std() > 0.5
    kinds = {sandbox.SENTENCES[s].kind for t in texts for s in gold.split_sentences(t) if s in sandbox.SENTENCES}
    assert {"detail", "hazard", "refusal", "caveat"} <= kinds


def test_cache_hit_loads_the_same_policy_without_building(box, builds, monkeypatch):
    digest = json.loads((box.directory / "config.json").read_text())["code"]
    monkeypatch.setattr(build, "code_digest", lambda *args, **kwargs: digest)
    again = sandbox.load_sandbox(box.config, cache_dir=box.directory.parent)
    assert builds() == 0 and again.directory == box.directory
    _assert_same_params(again.policy, box.policy)
    assert again.tokenizer.vocab_size == box.tokenizer.vocab_size and again.train_log == box.train_log


def test_rebuild_equals_cache_hit(tmp_path, builds, monkeypatch):
    """A short (2-step, one length bucket) build: loading it back equals rebuilding it."""
    monkeypatch.setattr(build, "code_digest", lambda *args, **kwargs: "pinned")
    built = sandbox.load_sandbox(QUICK, cache_dir=tmp_path)
    assert builds() == 1
    rebuilt = sandbox.load_sandbox(QUICK, cache_dir=tmp_path, rebuild=True)
    assert builds() == 2
    entries = sorted(p.name for p in tmp_path.iterdir())  # no temporary build left behind; the entry's lock file stays
    assert rebuilt.directory == built.directory and entries == sorted([built.directory.name, f".{built.directory.name}.lock"])
    hit = sandbox.load_sandbox(QUICK, cache_dir=tmp_path)
    assert builds() == 2 and hit.directory == built.directory
    _assert_same_params(built.policy, rebuilt.policy)
    assert built.train_log["losses"] == rebuilt.train_log["losses"]


def test_cache_key_follows_config_and_cache_root(monkeypatch, tmp_path):
    key = sandbox.cache_key(QUICK)
    assert sandbox.cache_key(dataclasses.replace(QUICK, seed=1)) != key
    assert sandbox.cache_key(dataclasses.replace(QUICK, grammar=sandbox.ResponseGrammar(p_ack=0.5))) != key
    assert sandbox.cache_key(dataclasses.replace(QUICK, beta=2.0)) != key
    monkeypatch.setenv(sandbox.CACHE_ENV, str(tmp_path))
    assert sandbox.cache_root() == tmp_path and sandbox.cache_root(tmp_path / "x") == tmp_path / "x"
    with pytest.raises(ValueError, match="warmup_steps"):
        sandbox.PolicyConfig(steps=10, warmup_steps=10)


def _assert_same_params(a, b):
    leaves_a, leaves_b = jax.tree.leaves(nnx.state(a, nnx.Param)), jax.tree.leaves(nnx.state(b, nnx.Param))
    assert len(leaves_a) == len(leaves_b)
    for x, y in zip(leaves_a, leaves_b):
        np.testing.assert_array_equal(np.asarray(x), np.asarray(y))
