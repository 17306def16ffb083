"""Streaming reader of preference files (gzip or plain JSON lines), with validation.

Compression is detected from the file's first bytes (the gzip magic number), not its suffix.
The format is given by name or, when ``format=None``, detected from the first line holding a JSON
object. Checks common to all formats run after the format's parser: a response that is empty
(or only whitespace) and two responses that are the same text (ignoring surrounding whitespace)
are errors unless explicitly allowed; real data has both (HH has a few empty chosen responses,
meaning "say nothing"; AlpacaEval compares its reference with itself).
"""

from __future__ import annotations

import gzip
import json
import os
import zlib
from collections.abc import Iterable, Iterator
from typing import IO, NamedTuple

from alignment.data.errors import DataError, FieldError, ParseReport, check_on_error
from alignment.data.formats import FORMATS, Format, Pair, detect_format, get_format
from alignment.data.records import PreferenceRecord

GZIP_MAGIC = b"\x1f\x8b"
_LINE = "<line>"  # the "field" of errors about a whole line
_FILE = "<file>"  # the "field" of errors about the rest of the file (a damaged gzip stream)
# What a damaged gzip stream raises while being read: cut short (EOFError), bad deflate data
# (zlib.error), a bad header, trailer or CRC (gzip.BadGzipFile).
_GZIP_ERRORS = (EOFError, zlib.error, gzip.BadGzipFile)


def open_binary(path: str | os.PathLike) -> IO[bytes]:
    """Opens ``path`` for reading bytes, decompressing when it starts with the gzip magic number."""
    with open(path, "rb") as f:
        compressed = f.read(len(GZIP_MAGIC)) == GZIP_MAGIC
    return gzip.open(path, "rb") if compressed else open(path, "rb")


def _decode(raw: bytes) -> dict:
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        raise FieldError("bad_encoding", _LINE, str(e)) from None
    try:
        obj = json.loads(text)
    except ValueError as e:  # JSONDecodeError, or an integer of more digits than int() converts
        raise FieldError("malformed_json", _LINE, str(e)) from None
    except RecursionError:
        raise FieldError("malformed_json", _LINE, "the JSON value is nested too deeply to parse") from None
    if not isinstance(obj, dict):
        raise FieldError("malformed_json", _LINE, f"expected a JSON object, got {type(obj).__name__}")
    return obj


def _numbered_lines(path: str, lines: Iterable[bytes]) -> Iterator[tuple[int, bytes]]:
    """``enumerate(lines, start=1)``, a damaged gzip stream raising ``DataError`` (bad_compression)
    at the line it cuts, in every ``on_error`` mode."""
    iterator, number = iter(lines), 0
    while True:
        try:
            raw = next(iterator)
        except StopIteration:
            return
        except _GZIP_ERRORS as e:
            detail = f"the gzip stream is truncated or corrupt ({type(e).__name__}: {e}); this line and the rest are unreadable"
            raise DataError(path, number + 1, FieldError("bad_compression", _FILE, detail)) from None
        number += 1
        yield number, raw


def _check_responses(pair: Pair, allow_empty: bool, allow_identical: bool) -> None:
    if not allow_empty:
        for field, text in (("chosen", pair.chosen), ("rejected", pair.rejected)):
            if not text.strip():
                raise FieldError(
                    "empty_response", field, "the response is empty (allow with allow_empty_responses=True)"
                )
    if not allow_identical and pair.chosen.strip() == pair.rejected.strip():
        raise FieldError(
            "identical_responses",
            "rejected",
            "both responses are the same text (allow with allow_identical_responses=True)",
        )


class PreferenceReader:
    """Iterates over the :class:`PreferenceRecord` s of one file, streaming.

    Args:
      path: a JSON-lines file, gzip-compressed or not.
      format: a registered format name, or None to detect it from the first JSON object.
      property: the records' property name (default: the format's, e.g. "harmless" for "hh").
      on_error: "raise" (default) raises :class:`DataError` at the first bad line; "skip" skips
        bad lines and counts them per reason in :attr:`report`, logged when the file ends. A
        truncated or corrupt gzip stream raises ``DataError`` (reason "bad_compression") in both.
      allow_empty_responses: keep pairs with an empty response instead of rejecting them.
      allow_identical_responses: keep pairs whose two responses are equal (no preference signal).

    After (or during) an iteration, :attr:`report` tells what happened to every line.
    """

    def __init__(
        self,
        path: str | os.PathLike,
        format: str | None = None,
        *,
        property: str | None = None,
        on_error: str = "raise",
        allow_empty_responses: bool = False,
        allow_identical_responses: bool = False,
    ):
        self.path = os.fspath(path)
        self.format = None if format is None else get_format(format)
        self.property = property
        self.on_error = check_on_error(on_error)
        self.allow_empty = allow_empty_responses
        self.allow_identical = allow_identical_responses
        self.report = ParseReport(self.path, format or "?")

    def __iter__(self) -> Iterator[PreferenceRecord]:
        fmt = self.format
        self.report = report = ParseReport(self.path, fmt.name if fmt else "?")
        with open_binary(self.path) as lines:
            for number, raw in _numbered_lines(self.path, lines):
                report.lines += 1
                if not raw.strip():
                    report.blank += 1
                    continue
                try:
                    obj = _decode(raw)
                    if fmt is None:
                        fmt = self._detect(obj)
                        report.format = fmt.name
                    pair = fmt.parse(obj)
                    _check_responses(pair, self.allow_empty, self.allow_identical)
                except FieldError as e:
                    error = DataError(self.path, number, e)
                    if self.on_error == "raise":
                        raise error from None
                    report.skip(error)
                    continue
                report.kept += 1
                yield PreferenceRecord(
                    *pair,
                    property=self.property if self.property is not None else fmt.property,
                    source=self.path,
                    line=number,
                )
        report.log()

    @staticmethod
    def _detect(obj: dict) -> Format:
        fmt = detect_format(obj)
        if fmt is None:
            known = {name: f.fields for name, f in FORMATS.items()}
            raise FieldError("missing_field", _LINE, f"keys {sorted(obj)} match no known format {known}")
        return fmt


class Loaded(NamedTuple):
    records: list[PreferenceRecord]
    report: ParseReport


def load_preferences(path: str | os.PathLike, format: str | None = None, **options) -> Loaded:
    """All records of one file and its :class:`ParseReport` (options as for :class:`PreferenceReader`)."""
    reader = PreferenceReader(path, format, **options)
    records = list(reader)
    return Loaded(records, reader.report)
