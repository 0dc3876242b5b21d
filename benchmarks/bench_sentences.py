"""Sentence splitters for semantic chunking, measured: boundary quality on labelled answer-style text
and speed on the real Stack Exchange answers.

Run from the repository root::

    qaembed data prepare --out benchmarks/_work/se5
    python benchmarks/bench_sentences.py --data benchmarks/_work/se5 --results benchmarks/results/sentences.md

Candidates (each installed from PyPI): ``pysbd`` (rule-based, Golden Rules of sentence boundaries),
``blingfire`` (Microsoft, compiled finite-state), and ``chonkie``'s delimiter rule (``SentenceChunker``:
split after ". ", "! ", "? ", newline). ``semantic-text-splitter`` is not in the table: it has no
sentence list to give; its ``TextSplitter`` packs text up to a capacity, descending to smaller
Unicode units (sentences, words, graphemes) only where a larger one does not fit, so it is a
*chunker* to compare against the semantic rule, not a sentence splitter. Quality: precision and recall of sentence *boundaries*
(character offsets where a new sentence starts) against the hand-labelled cases below, written in
the style of Stack Exchange answers (abbreviations, version numbers, URLs, code, lists, quotes).
Speed: MB/s and sentences/s over every answer of the prepared dataset (pysbd on a sample).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from _output import print_and_save  # noqa: E402

# Each case: the sentences, in order; the text is them joined by single spaces (or by the newline they end with).
CASES = [
    ["Use e.g. Python 3.11 for this.", "It is faster."],
    ["Dr. Smith brews at 65.5 °C for 60 min.", "Then he cools the wort."],
    ["See https://beer.stackexchange.com/a/123 for details.", "The answer there is good."],
    ["I use v2.3.1 of the library, i.e. the latest one.", "Older versions fail."],
    ["Does it work?", "Yes!", "It does."],
    ["The ratio is approx. 1:16 by weight.", "Some prefer 1:15."],
    ["Mr. and Mrs. Jones own a brewery in the U.S. and sell lager.", "It is popular."],
    ["Grind finer (about 0.5 mm) for espresso.", "Coarser for French press."],
    ["He said \"keep it cold.\"", "So I did."],
    ["The file is config.yaml in the repo.", "Edit it there."],
    ["Call np.mean(x) on the array.", "It returns a float."],
    ["Steps:\n", "1. Heat the water.\n", "2. Add the grounds.\n", "3. Wait four minutes."],
    ["This costs $3.50 per bottle, e.g. at most stores.", "Prices vary."],
    ["Quantum computers use qubits, cf. Nielsen & Chuang, ch. 1.", "Read it first."],
    ["It's about 5 p.m. in London now.", "Tea time."],
    ["Set ABV to 5.2%.", "Then bottle it."],
    ["No.", "That is wrong."],
    ["The St. Louis brewery closed in 2019.", "It reopened later."],
    ["Use the --force flag.", "It overrides the lock.", "Be careful."],
    ["In Fig. 2 the curve flattens.", "That is expected."],
]


def case_text(sentences: list[str]) -> tuple[str, set[int]]:
    """The case's text and the offsets where its 2nd, 3rd... sentences start."""
    text, starts = "", set()
    for sentence in sentences:
        if text:
            if not text.endswith("\n"):
                text += " "
            starts.add(len(text))
        text += sentence
    return text, starts


def splitters():
    import blingfire
    import pysbd
    from chonkie import SentenceChunker

    segmenter = pysbd.Segmenter(language="en", clean=False, char_span=True)
    chonkie = SentenceChunker(chunk_size=1, min_characters_per_sentence=1)

    def starts_of(spans, text):
        return {start for start in spans if 0 < start < len(text)}

    def pysbd_starts(text):
        return starts_of([span.start for span in segmenter.segment(text)], text)

    def blingfire_starts(text):
        return starts_of([start for start, _ in blingfire.text_to_sentences_and_offsets(text)[1]], text)

    def chonkie_starts(text):
        return starts_of([chunk.start_index for chunk in chonkie.chunk(text)], text)

    return {"pysbd": pysbd_starts, "blingfire": blingfire_starts, "chonkie (delimiters)": chonkie_starts}


def next_word_start(text: str, position: int) -> int:
    while position < len(text) and text[position].isspace():
        position += 1
    return position


def quality(split) -> tuple[float, float, int]:
    true_positive = predicted = actual = exact = 0
    for sentences in CASES:
        text, starts = case_text(sentences)
        found = {next_word_start(text, start) for start in split(text)}
        found.discard(len(text))
        true_positive += len(found & starts)
        predicted += len(found)
        actual += len(starts)
        exact += found == starts
    return true_positive / max(predicted, 1), true_positive / max(actual, 1), exact


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, required=True)
    parser.add_argument("--pysbd-sample", type=int, default=800, help="Answers timed for pysbd (slow).")
    parser.add_argument("--results", type=Path, default=None)
    args = parser.parse_args()

    from qaembed.data.dataset import read_split

    texts = [answer.text for split in ("train", "dev", "test") for record in read_split(args.data, split) for answer in record.answers]
    lines = [
        "# Sentence splitters for chunking", "",
        f"Command: `python benchmarks/bench_sentences.py --data {args.data}`. Quality: {len(CASES)} labelled cases "
        f"({sum(len(c) - 1 for c in CASES)} boundaries); speed: {len(texts):,} real answers "
        f"({sum(len(t.encode()) for t in texts) / 1e6:.2f} MB).", "",
        "| splitter | boundary precision | boundary recall | cases exactly right | MB/s | sentences/s |",
        "|---|---|---|---|---|---|",
    ]
    for name, split in splitters().items():
        precision, recall, exact = quality(split)
        sample = texts[: args.pysbd_sample] if name == "pysbd" else texts
        started = time.perf_counter()
        count = sum(len(split(text)) + 1 for text in sample)
        seconds = time.perf_counter() - started
        megabytes = sum(len(text.encode()) for text in sample) / 1e6
        lines.append(f"| {name} | {precision:.2f} | {recall:.2f} | {exact}/{len(CASES)} | {megabytes / seconds:.2f} | {count / seconds:,.0f} |")
    print_and_save("\n".join(lines) + "\n", args.results)


if __name__ == "__main__":
    main()
