"""A manifest's lines as records: which physical lines make each record, and what each record says.

Every line after the header is accounted for: blank lines and comments are nothing, every other line
belongs to exactly one record, and every record parses into a `Row` or into the reason it is skipped.
In a CSV, a quote that opens a field may carry the record over several lines; a quote anywhere else
is a character of its field. A record over several lines that does not parse is read again as its
first line alone, so one stray quote never swallows the lines after it.
"""
from __future__ import annotations

import codecs
import csv
import os
from array import array
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np

from avaudit.media.formats import BadLabel, Format, Row
from avaudit.vocab import Skip

Span = tuple[int, int]  # first and last line number (1-based) of a record


class Lines(Sequence):
    """A text's lines (split at '\\n', as str.split does), each cut from the text when asked for: a
    manifest of ten million lines holds its text and one offset a line, not ten million strings."""

    def __init__(self, text: str) -> None:
        self.text, self._starts = text, array("q", [0])
        at = text.find("\n")
        while at >= 0:
            self._starts.append(at + 1)
            at = text.find("\n", at + 1)
        self._starts.append(len(text) + 1)

    def __len__(self) -> int:
        return len(self._starts) - 1

    def __getitem__(self, i):
        if isinstance(i, slice):
            return [self[k] for k in range(*i.indices(len(self)))]
        if i < 0:
            i += len(self)
        if not 0 <= i < len(self):
            raise IndexError(i)
        return self._cut(self._starts[i], self._starts[i + 1] - 1)

    def _cut(self, start: int, end: int) -> str:
        return self.text[start:end]

    def joined(self, first: int, last: int) -> str:
        """Lines first..last (inclusive) as the text holds them, '\\n' between."""
        return self._cut(self._starts[first], self._starts[last + 1] - 1)

    def record(self, span: Span) -> str:
        """The text of the record on the (1-based) lines `span`, as read_records gives it."""
        return self.joined(span[0] - 1, span[1] - 1).removesuffix("\r")


class FileLines(Lines):
    """A UTF-8 file's lines, as Lines has them from its text (a byte-order mark dropped), read from the file
    when asked for: ten million lines hold a byte offset each, not the file's text as well (~50 bytes a line
    while a manifest's records are read). The file is checked to be UTF-8 as its line ends are found, a block
    at a time; lines are read a block of BLOCK bytes at a time, mostly in order."""

    BLOCK = 1 << 20

    def __init__(self, path: Path) -> None:
        self.path, self._handle = path, open(path, "rb")
        self._block_at, self._block = 0, b""
        check = codecs.getincrementaldecoder("utf-8")()
        first = self._handle.read(self.BLOCK)
        at = len(codecs.BOM_UTF8) if first.startswith(codecs.BOM_UTF8) else 0
        self._starts, chunk, size = array("q", [at]), first[at:], at
        try:
            while chunk:
                check.decode(chunk)
                self._starts.frombytes((np.flatnonzero(np.frombuffer(chunk, np.uint8) == 10) + size + 1).tobytes())
                size += len(chunk)
                chunk = self._handle.read(self.BLOCK)
            check.decode(b"", final=True)
        except UnicodeDecodeError:  # said of the whole text, as a read of it says it
            path.read_bytes().decode("utf-8-sig")
            raise
        self._starts.append(size + 1)

    def _cut(self, start: int, end: int) -> str:
        if not (self._block_at <= start and end <= self._block_at + len(self._block)):
            self._block_at, self._block = start, os.pread(self._handle.fileno(), max(self.BLOCK, end - start), start)
        return self._block[start - self._block_at : end - self._block_at].decode("utf-8")


def where(span: Span) -> str:
    """'line 3' or 'lines 3-5': how a detail names the record's lines."""
    return f"line {span[0]}" if span[0] == span[1] else f"lines {span[0]}-{span[1]}"


def _in_quotes(line: str, *, quoted: bool, skip_space: bool) -> bool:
    """Whether a CSV record is inside a quoted field at the end of `line`, having been inside one
    (`quoted`) at its start. Only a quote that opens a field opens a quoted field."""
    at, n = 0, len(line)
    while True:
        if not quoted:
            start = at
            while skip_space and start < n and line[start] == " ":
                start += 1
            if start < n and line[start] == '"':
                quoted, at = True, start + 1
                continue
            comma = line.find(",", at)
            if comma < 0:
                return False
            at = comma + 1
            continue
        quote = line.find('"', at)
        if quote < 0:
            return True
        if line.startswith('""', quote):
            at = quote + 2
            continue
        quoted = False
        comma = line.find(",", quote + 1)  # text between a closing quote and the comma: the parse says so
        if comma < 0:
            return False
        at = comma + 1


def _last_line(lines: list[str], i: int, fmt: Format) -> int:
    """Index of the last line of the record that starts at lines[i]; the record is lines[i] alone
    where a quoted field opened in it is never closed."""
    if not fmt.quoted or '"' not in lines[i]:
        return i
    open_quote, k = _in_quotes(lines[i], quoted=False, skip_space=fmt.skip_space), i
    while open_quote and k + 1 < len(lines):
        k += 1
        open_quote = _in_quotes(lines[k], quoted=True, skip_space=fmt.skip_space)
    return i if open_quote else k


def _parse(record: str, span: Span, fmt: Format, root: str) -> Row | tuple[Skip, str]:
    """The record's Row, or (skip reason, detail naming its lines)."""
    try:
        fields = fmt.split(record)
        if len(fields) != fmt.n_fields:
            raise ValueError(f"expected {fmt.n_fields} fields, found {len(fields)}")
        return fmt.parse(fields if fmt.raw_fields else [f.strip() for f in fields], root)
    except BadLabel as e:
        return Skip.bad_label, f"{where(span)}: {e}"
    except (ValueError, csv.Error) as e:
        unclosed = fmt.quoted and _in_quotes(record, quoted=False, skip_space=fmt.skip_space)
        why = 'a quoted field opens and is never closed (a " inside a quoted field is written "")' if unclosed else e
        return Skip.malformed_row, f"{where(span)}: {why}"


def read_records(lines: Sequence[str], start: int, fmt: Format, root: str) -> Iterator[tuple[Span, str, Row | tuple]]:
    """(span, record text, Row or (skip reason, detail)) of each record from lines[start]. Lines keep
    their '\\r'; a record's own line breaks are kept in its text, its last '\\r' is not."""
    i, n = start, len(lines)
    while i < n:
        line = lines[i].removesuffix("\r")
        if not line.strip() or (fmt.comment and line.startswith(fmt.comment)):
            i += 1
            continue
        last = _last_line(lines, i, fmt)
        span = (i + 1, last + 1)
        record = (lines.joined(i, last) if isinstance(lines, Lines) else "\n".join(lines[i : last + 1])
                  ).removesuffix("\r")
        parsed = _parse(record, span, fmt, root)
        if last > i and not isinstance(parsed, Row):
            last, span, record = i, (i + 1, i + 1), line
            parsed = _parse(record, span, fmt, root)
        yield span, record, parsed
        i = last + 1
