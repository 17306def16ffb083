r"""A TFDS builder over local preference files (needs the ``[seqio]`` extra).

``PreferencePairs`` reads one JSON-lines file from the download config's ``manual_dir`` with
the same :class:`~alignment.data.reader.PreferenceReader` as the plain path (same parsing, same
validation) and writes one TFDS split per named hash split (:mod:`alignment.data.splits`),
keeping file order. Nothing is downloaded. Any file, by a :class:`PreferencePairsConfig`::

    import json, tempfile
    import tensorflow_datasets as tfds
    from alignment.data.tfds_builder import PreferencePairs, PreferencePairsConfig, record_from_example

    manual_dir = tempfile.mkdtemp()                    # where the input file is
    with open(f"{manual_dir}/pairs.jsonl", "w") as f:
        for i in range(100):
            f.write(json.dumps({"prompt": f"Question {i}?", "chosen": "A full answer.", "rejected": "No."}) + "\n")
    config = PreferencePairsConfig(name="my_pairs", filename="pairs.jsonl", format="prompt_pairs")
    builder = PreferencePairs(config=config, data_dir=tempfile.mkdtemp())
    builder.download_and_prepare(download_config=tfds.download.DownloadConfig(manual_dir=manual_dir))
    records = [record_from_example(ex) for ex in builder.as_dataset(split="reward_train").as_numpy_iterator()]
    print(len(records), records[0].chosen)             # 41 A full answer.  (41 of the 100 pairs)

The built-in configs ``hh_harmless_base_test`` and ``alpaca_eval_pairs`` read the shared real
data: pass ``config="hh_harmless_base_test"`` and the shared data folder as ``manual_dir``.
"""

from __future__ import annotations

import dataclasses
import os

import numpy as np
import tensorflow_datasets as tfds

from alignment.data.reader import PreferenceReader
from alignment.data.records import Message, PreferenceRecord
from alignment.data.splits import DEFAULT_SPLITS, filter_split


@dataclasses.dataclass
class PreferencePairsConfig(tfds.core.BuilderConfig):
    """Which file to read and how (fields as for ``PreferenceReader`` and ``filter_split``).

    Attributes:
      filename: the file's path relative to ``manual_dir``.
    """

    filename: str = ""
    format: str | None = None
    property: str | None = None
    on_error: str = "raise"
    allow_empty_responses: bool = False
    allow_identical_responses: bool = False
    fractions: dict[str, float] = dataclasses.field(default_factory=lambda: dict(DEFAULT_SPLITS))
    salt: str = ""


class PreferencePairs(tfds.core.GeneratorBasedBuilder):
    """Preference pairs from a local file, one TFDS split per hash split."""

    VERSION = tfds.core.Version("1.0.0")
    RELEASE_NOTES = {"1.0.0": "Initial release."}
    MANUAL_DOWNLOAD_INSTRUCTIONS = "Put the config's `filename` (relative path) under the manual_dir."
    BUILDER_CONFIGS = [
        # The project's shared real data (manual_dir = the shared data folder). In HH an empty
        # chosen response means "say nothing"; AlpacaEval compares its reference with itself.
        PreferencePairsConfig(
            name="hh_harmless_base_test",
            filename="hh-rlhf/harmless-base-test.jsonl.gz",
            format="hh",
            allow_empty_responses=True,
        ),
        PreferencePairsConfig(
            name="alpaca_eval_pairs",
            filename="alpaca-eval-prefs/pairs.jsonl.gz",
            format="alpaca_eval",
            allow_identical_responses=True,
        ),
    ]

    def _info(self) -> tfds.core.DatasetInfo:
        text = tfds.features.Text()
        return self.dataset_info_from_configs(
            features=tfds.features.FeaturesDict(
                {
                    "context": tfds.features.Sequence({"role": text, "content": text}),
                    "chosen": text,
                    "rejected": text,
                    "label": tfds.features.Tensor(
                        shape=(), dtype=np.float64, encoding=tfds.features.Encoding.BYTES
                    ),  # exact
                    "property": text,
                    "source": text,
                    "line": tfds.features.Scalar(np.int64),
                }
            ),
            disable_shuffling=True,
        )

    def _split_generators(self, dl_manager: tfds.download.DownloadManager):
        path = os.path.join(dl_manager.manual_dir, self.builder_config.filename)
        return {name: self._generate_examples(path, name) for name in self.builder_config.fractions}

    def _generate_examples(self, path: str, split: str):
        config = self.builder_config
        reader = PreferenceReader(
            path,
            config.format,
            property=config.property,
            on_error=config.on_error,
            allow_empty_responses=config.allow_empty_responses,
            allow_identical_responses=config.allow_identical_responses,
        )
        for record in filter_split(reader, split, config.fractions, config.salt):
            yield record.line, example_from_record(record)


def example_from_record(record: PreferenceRecord) -> dict:
    """The TFDS example (feature dict) of a record."""
    example = dataclasses.asdict(record)
    example["context"] = {"role": [m.role for m in record.context], "content": [m.content for m in record.context]}
    return example


def _text(value: bytes) -> str:
    return value.decode("utf-8")


def record_from_example(example: dict) -> PreferenceRecord:
    """The record of a decoded (numpy) TFDS example: the inverse of ``example_from_record``."""
    context = example["context"]
    return PreferenceRecord(
        context=tuple(Message(_text(r), _text(c)) for r, c in zip(context["role"], context["content"])),
        chosen=_text(example["chosen"]),
        rejected=_text(example["rejected"]),
        label=float(example["label"]),
        property=_text(example["property"]),
        source=_text(example["source"]),
        line=int(example["line"]),
    )
