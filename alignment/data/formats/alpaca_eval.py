"""AlpacaEval-style pairwise annotations: ``{"instruction", "output_1", "output_2", "preference"}``.

``preference`` is in [1, 2]: 1 means ``output_1`` preferred, 2 means ``output_2`` preferred, and
values between are soft judgements, so P(output_2 preferred) = preference - 1.

Orientation: ``chosen`` is the preferred output and ``label`` = P(chosen preferred) >= 0.5, i.e.
``output_1`` is chosen with label ``2 - preference`` when preference <= 1.5, and ``output_2`` is
chosen with label ``preference - 1`` otherwise. An exact tie (1.5) keeps ``output_1`` as chosen
with label 0.5. Other keys (``dataset``, ``generator_*``) are ignored.
"""

from __future__ import annotations

from alignment.data.formats.fields import get_number, get_str
from alignment.data.formats.registry import Format, Pair, register_format
from alignment.data.records import Message


def parse(obj) -> Pair:
    instruction = get_str(obj, "instruction")
    output_1, output_2 = get_str(obj, "output_1"), get_str(obj, "output_2")
    p_output_2 = get_number(obj, "preference", 1.0, 2.0) - 1.0
    context = (Message("user", instruction),)
    if p_output_2 <= 0.5:
        return Pair(context, output_1, output_2, 1.0 - p_output_2)
    return Pair(context, output_2, output_1, p_output_2)


FORMAT = register_format(
    Format(
        name="alpaca_eval",
        parse=parse,
        fields=("instruction", "output_1", "output_2", "preference"),
        property="helpful",
        doc=(
            "instruction: the user turn (the whole context)\n"
            "output_1, output_2: the two responses\n"
            "preference: in [1, 2]; 1 prefers output_1, 2 prefers output_2, between is soft; "
            "chosen is the preferred output, label = P(chosen preferred) >= 0.5\n"
            "other keys (dataset, generator_1, ...): ignored"
        ),
    )
)
