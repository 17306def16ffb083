"""Gold-reward sandbox, text side: prompts, responses, gold utilities, BT labels, splits, tokenizer."""

import re

import numpy as np
import pytest

from alignment import data
from alignment import sandbox
from alignment.sandbox import gold

CONFIG = sandbox.SandboxConfig()


@pytest.fixture(scope="module")
def records():
    return sandbox.preference_records(CONFIG)


@pytest.fixture(scope="module")
def base_samples():
    """8 grammar responses per prompt with their gold utilities, ``[prompts, 8]`` arrays."""
    rng = np.random.default_rng(123)
    prompts = sandbox.all_prompts()
    texts = [[sandbox.sample_response(p.topic, rng) for _ in range(8)] for p in prompts]
    utilities = [[sandbox.gold_utilities(p.text, t) for t in row] for p, row in zip(prompts, texts)]
    helpful = np.array([[u["helpful"] for u in row] for row in utilities])
    harmless = np.array([[u["harmless"] for u in row] for row in utilities])
    return prompts, texts, helpful, harmless


def test_same_seed_same_records_other_seed_other_records(records):
    assert sandbox.preference_records(CONFIG) == records
    other = sandbox.preference_records(sandbox.SandboxConfig(seed=1))
    assert [r.chosen for r in other["helpful"]] != [r.chosen for r in records["helpful"]]


def test_text_is_readable_and_in_vocabulary(base_samples):
    prompts, texts, _, _ = base_samples
    tokenizer = sandbox.sandbox_tokenizer()
    vocabulary = set(tokenizer.tokenizer.get_vocab())
    assert tokenizer.vocab_size < 1000
    sample = [p.text for p in prompts[::10]] + [t for row in texts[::10] for t in row]
    for text in sample:
        assert re.fullmatch(r"[A-Za-z0-9 ,]+[.?!]( [A-Za-z0-9 ,]+[.?!])*", text), text
        assert all(w in vocabulary for w in re.findall(r"\w+|[^\w\s]", text)), text
        assert tokenizer.decode(tokenizer.encode(text)) == text


def test_tokenizer_interface_and_chat_template():
    tokenizer = sandbox.sandbox_tokenizer()
    assert tokenizer.pad_id == 0 and tokenizer.decode([tokenizer.eos_id]) == "<|im_end|>"
    record = data.PreferenceRecord((data.Message("user", "How do I cook rice?"),), "Good question.", "Good luck!")
    pair = data.encode_pair(record, tokenizer)
    assert pair.chosen[-1] == tokenizer.eos_id and pair.prompt[0] == tokenizer.bos_id
    assert tokenizer.decode(pair.chosen, skip_special_tokens=True) == "Good question."
    assert tokenizer.encode("Good flibbertigibbet.")[1] == tokenizer.tokenizer.token_to_id("<unk>")


def test_both_properties_vary_over_base_responses(base_samples):
    prompts, _, helpful, harmless = base_samples
    risky = np.array([p.topic.risky for p in prompts])
    assert helpful.std() > 0.5 and harmless.std() > 0.5
    assert helpful[~risky].std() > 0.5 and helpful[risky].std() > 0.5 and harmless[risky].std() > 0.5
    assert (helpful.std(axis=1) > 0).mean() > 0.95  # almost every prompt has a spread of helpfulness


def test_properties_conflict_on_many_prompts(base_samples):
    """Share of prompts whose most helpful base response is not among the most harmless."""
    prompts, _, helpful, harmless = base_samples
    best = np.take_along_axis(harmless, helpful.argmax(axis=1)[:, None], axis=1)[:, 0]
    conflict = best < harmless.max(axis=1)
    risky = np.array([p.topic.risky for p in prompts])
    assert conflict.mean() >= 0.25 and conflict[risky].mean() >= 0.8
    assert np.corrcoef(helpful[risky].ravel(), harmless[risky].ravel())[0, 1] < -0.3


def _answer(topic, n_details, repeats=1):
    details = list(topic.details[:n_details]) * repeats
    return " ".join([sandbox.bank.ACKS[0], *details, sandbox.bank.CLOSINGS[0]])


def test_helpfulness_has_diminishing_returns_then_falls():
    topic = sandbox.TOPICS[0]
    prompt = next(p for p in sandbox.all_prompts() if p.topic == topic)
    h = [sandbox.gold_utilities(prompt.text, _answer(topic, k))["helpful"] for k in range(len(topic.details) + 1)]
    gains = np.diff(h)
    assert (gains[:4] > 0).all() and (np.diff(gains[:4]) < 0).all()  # concave while short
    assert h[len(topic.details)] < h[4]  # many more details (9 sentences) score lower than 4
    assert sandbox.gold_utilities(prompt.text, _answer(topic, 4, repeats=3))["helpful"] < h[1]


def test_a_linear_fit_on_base_samples_extrapolates_wrongly(base_samples):
    """Within the base range, longer is better; beyond it the gold utility falls."""
    prompts, texts, helpful, _ = base_samples
    lengths = np.array([[len(gold.split_sentences(t)) for t in row] for row in texts])
    assert (lengths > gold.L_FREE).mean() < 0.02
    slope = np.polyfit(lengths.ravel(), helpful.ravel(), 1)[0]
    assert slope > 0.1
    topic = sandbox.TOPICS[0]
    prompt = next(p for p in sandbox.all_prompts() if p.topic == topic)
    long = sandbox.gold_utilities(prompt.text, _answer(topic, 7, repeats=2))["helpful"]
    assert long < np.median(helpful)


def test_garbled_text_and_hazards_are_penalised():
    prompt = next(p for p in sandbox.all_prompts() if p.topic.name == "chemicals")
    topic = prompt.topic
    clean = sandbox.gold_utilities(prompt.text, topic.details[0])
    garbled = sandbox.gold_utilities(prompt.text, topic.details[0] + " Heat the bleach mould")
    assert garbled["helpful"] < clean["helpful"] - 0.9 and garbled["harmless"] < clean["harmless"] - 0.9
    hazard = sandbox.gold_utilities(prompt.text, topic.hazards[0])
    refusal = sandbox.gold_utilities(prompt.text, sandbox.bank.REFUSALS[0])
    assert hazard["helpful"] > clean["helpful"] > refusal["helpful"]
    assert hazard["harmless"] < clean["harmless"] < refusal["harmless"]
    assert sandbox.gold_utilities(prompt.text, "")["helpful"] < 0
    with pytest.raises(KeyError, match="not a sandbox prompt"):
        sandbox.gold_utilities("What is love?", "Good question.")


def test_records_are_preference_records_with_provenance(records):
    for prop in sandbox.PROPERTIES:
        rs = records[prop]
        assert len(rs) == CONFIG.pairs_per_prompt * len(sandbox.all_prompts())
        assert all(isinstance(r, data.PreferenceRecord) and r.property == prop and r.label == 1.0 for r in rs)
        assert {r.source for r in rs} == {"sandbox:seed=0"} and [r.line for r in rs] == list(range(1, len(rs) + 1))
        assert all(r.chosen != r.rejected for r in rs)


def test_labels_follow_the_bradley_terry_model(records):
    """Empirical P(a chosen) in bins of the gold margin g(a) - g(b) matches sigmoid(beta * margin)."""
    rs = records["helpful"] + records["harmless"]
    margins = sandbox.gold_margins(rs)
    flip = np.random.default_rng(0).random(len(rs)) < 0.5  # orient each pair at random: a = chosen or rejected
    x = np.where(flip, -margins, margins)
    y = ~flip
    edges = np.quantile(x, np.linspace(0, 1, 9))
    for lo, hi in zip(edges[:-1], edges[1:]):
        inside = (x >= lo) & (x <= hi)
        predicted = (1 / (1 + np.exp(-CONFIG.beta * x[inside]))).mean()
        assert abs(y[inside].mean() - predicted) < 4 * np.sqrt(0.25 / inside.sum()) + 0.02, (lo, hi)


def test_gold_accuracy_on_noisy_labels_is_a_sensible_ceiling(records):
    for prop in sandbox.PROPERTIES:
        assert 0.7 <= sandbox.gold_accuracy(records[prop]) <= 0.9, prop


def test_splits_follow_alignment_data_splits(records):
    fractions = dict(CONFIG.splits)
    by_prompt = sandbox.split_prompts(sandbox.all_prompts(), fractions)
    assert sum(map(len, by_prompt.values())) == len(sandbox.all_prompts())
    assert all(len(v) > 40 for v in by_prompt.values())
    for name, group in data.split_records(records["harmless"], fractions).items():
        texts = {p.text for p in by_prompt[name]}
        assert all(r.context[-1].content in texts for r in group)
