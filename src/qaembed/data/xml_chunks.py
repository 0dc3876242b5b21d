"""A dump file read as ~1 MiB pieces of whole rows, each parsed (and its rows processed) in a worker.

Stack Exchange dumps are one ``<row .../>`` per line between a one-line XML declaration and the
root element's tags. The sequential reader (:func:`~qaembed.data.stackexchange.iter_xml_rows`)
parses the whole file in one process, with the checks that make damage report exactly (a line
that is not UTF-8, text between rows, XML that breaks); at Stack Overflow's size that one parse
is the bottleneck once the per-row work runs in workers (``docs/scale.md``).

Here the main process only cuts the file into pieces at line starts that open a ``<row`` and
hands each piece, with its first line number, to :func:`parse_row_chunk` in a worker process;
the worker parses the piece on its own (wrapped in a throwaway root), checks that it is plainly
well formed — UTF-8, nothing but ``<row>`` elements and whitespace, the root's closing tag only at
the end of the file — and runs the caller's per-row function on its rows. A piece that is not
plain comes back as *damaged*, with nothing processed: the caller then reads the file from that
piece's first line on with the sequential reader, which reports the damage exactly as it always
has (what earlier pieces gave is the same as it would have given for them: they were plain).
A file whose head is not the plain form (a DOCTYPE, a comment, an encoding other than UTF-8)
is read sequentially from its first line. The results are identical either way; only the time
differs (``tests/data/test_data_workers.py``).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from pathlib import Path

from lxml import etree

from qaembed.data.adapter import open_binary

# The plain head of a dump: an optional BOM and XML declaration, then the root's start tag alone on its line.
_HEAD = re.compile(rb"(?:\xef\xbb\xbf)?(?:<\?xml[^>]*\?>)?[ \t\r\n]*<([A-Za-z_][A-Za-z0-9_.-]*)>[ \t\r]*\n")
_DECLARED_ENCODING = re.compile(rb"""\bencoding\s*=\s*["']([A-Za-z0-9._-]+)["']""")
_READ = 1 << 20
_PARSER = etree.XMLParser(huge_tree=True)

RowFields = tuple[str | None, ...]
# A job for parse_row_chunk: (rows_fn, fields, path, first line, bytes, root tag, last piece of the file?)
ChunkJob = tuple[Callable[[tuple[str, list[tuple[int, RowFields]]]], list], tuple[str, ...], str, int, bytes, bytes,
                 bool]


def _row_start_before(buffer: bytes, end: int) -> int:
    """The offset of the last line start before ``end`` whose line opens with ``<row`` (after blanks), or -1."""
    position = buffer.rfind(b"<row", 0, end)
    while position > 0:
        start = position
        while start > 0 and buffer[start - 1] in b" \t":
            start -= 1
        if start > 0 and buffer[start - 1] == 0x0A:
            return start
        position = buffer.rfind(b"<row", 0, position)
    return -1


class RowChunks:
    """The pieces of one dump file, as jobs for :func:`parse_row_chunk` (see the module docstring).

    When the head of the file is not the plain form, :meth:`jobs` yields nothing and
    :attr:`sequential_from` is 1: the whole file is for the sequential reader.
    """

    def __init__(self, path: Path, rows_fn: Callable, fields: tuple[str, ...], *, progress: bool):
        self.path, self.rows_fn, self.fields, self.progress = path, rows_fn, fields, progress
        self.sequential_from: int | None = None

    def jobs(self) -> Iterator[ChunkJob]:
        with open_binary(self.path, progress=self.progress) as fh:
            buffer = fh.read(_READ)
            head = _HEAD.match(buffer)
            if head is None or not _utf8_declared(buffer[: head.end()]):
                self.sequential_from = 1
                return
            root, line = head.group(1), 1 + buffer.count(b"\n", 0, head.end())
            buffer = buffer[head.end():]
            while more := fh.read(_READ):
                buffer += more
                cut = _row_start_before(buffer, len(buffer))
                if cut <= 0:  # rows longer than a read so far: read on
                    continue
                piece, buffer = buffer[:cut], buffer[cut:]
                yield self.rows_fn, self.fields, str(self.path), line, piece, root, False
                line += piece.count(b"\n")
            yield self.rows_fn, self.fields, str(self.path), line, buffer, root, True


def _utf8_declared(head: bytes) -> bool:
    match = _DECLARED_ENCODING.search(head)
    return match is None or match.group(1).lower() in (b"utf-8", b"utf8")


def parse_row_chunk(job: ChunkJob) -> tuple[int, list[int] | None, list | None]:
    """``(first line, the rows' lines, rows_fn's results)`` for a plain piece, ``(first line, None, None)`` for a
    damaged one.

    Runs in a worker process. ``rows_fn`` gets ``(path, [(line, values of fields), ...])``, the
    form :class:`~qaembed.data.stackexchange._PostBatches` gives it, and returns one result per row.
    """
    rows_fn, fields, path, first_line, data, root, last = job
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        return first_line, None, None
    if last:
        end = re.search(rb"</" + re.escape(root) + rb">\s*\Z", data)
        if end is None:  # truncated, or something after the root's end
            return first_line, None, None
        data = data[: end.start()]
    try:
        piece = etree.fromstring(b"<r>" + data + b"</r>", _PARSER)
    except etree.XMLSyntaxError:
        return first_line, None, None
    if piece.text and not piece.text.isspace():
        return first_line, None, None
    rows: list[tuple[int, RowFields]] = []
    for row in piece:
        if row.tag != "row" or len(row) or (row.text and not row.text.isspace()) or (
                row.tail and not row.tail.isspace()):
            return first_line, None, None
        rows.append((first_line + row.sourceline - 1, tuple(map(row.get, fields))))
    return first_line, [line for line, _ in rows], rows_fn((path, rows))
