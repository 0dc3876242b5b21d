"""Sentences of a document with their character spans: the units semantic chunking merges.

Paragraphs (text separated by a blank line) are always split apart; within a paragraph, sentence
boundaries come from ``blingfire`` (Microsoft's compiled sentence breaker). Why blingfire:
measured by ``benchmarks/bench_sentences.py`` on answer-style cases (abbreviations, versions,
URLs, lists) and the real Stack Exchange answers, it is as accurate as ``pysbd`` (boundary
precision 0.88 vs 0.89, recall 0.96 vs 1.00, 19 vs 18 of 20 cases exactly right) and 24× faster
(7.0 vs 0.29 MB/s); ``chonkie``'s delimiter rule is faster still but splits after every
"e.g." and "Dr." (precision 0.59). See ``docs/chunking.md``.

Spans are offsets into the original text, so a chunk's ``text[start:end]`` is exactly what the
document says there.

>>> text = "Use e.g. Python 3.11 here. It is fast.\\n\\nA new paragraph"
>>> [text[start:end] for start, end in split_sentences(text)]
['Use e.g. Python 3.11 here.', 'It is fast.', 'A new paragraph']
"""

from __future__ import annotations

import re

_PARAGRAPH = re.compile(r"\n[ \t\r]*\n\s*")  # a blank line, also with Windows line endings (\r\n)


def _paragraph_spans(text: str) -> list[tuple[int, int]]:
    spans, start = [], 0
    for match in _PARAGRAPH.finditer(text):
        spans.append((start, match.start()))
        start = match.end()
    spans.append((start, len(text)))
    return spans


def split_sentences(text: str) -> list[tuple[int, int]]:
    """(start, end) character spans of the sentences of ``text``, in order, without surrounding whitespace."""
    import blingfire

    spans: list[tuple[int, int]] = []
    for para_start, para_end in _paragraph_spans(text):
        paragraph = text[para_start:para_end]
        if not paragraph.strip():
            continue
        _, offsets = blingfire.text_to_sentences_and_offsets(paragraph)
        for start, end in offsets:
            piece = paragraph[start:end]
            if not piece.strip():
                continue
            lead = len(piece) - len(piece.lstrip())
            trail = len(piece) - len(piece.rstrip())
            spans.append((para_start + start + lead, para_start + end - trail))
    return spans
