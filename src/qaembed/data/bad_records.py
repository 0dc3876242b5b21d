"""What to do with a bad input record: fail (default) or skip it and count it by reason.

Every adapter reports a bad record through :meth:`BadRecordPolicy.reject` with a
:class:`~qaembed.errors.DataError` that names the file, line/row and field. By default
that error is raised (the CLI prints it and exits 2); with ``--skip-bad`` the record is
skipped and counted under a short reason name, and the counts (plus the first few
messages per reason) end up in ``stats.json`` and the stats table. There is no silent
fallback: a skipped record is always counted.

Reasons used by the adapters: ``malformed_xml`` (truncated or invalid XML: what parsed
before the error is kept; the count is the number of rows that could not be read, at
least 1), ``malformed_csv`` (wrong cell count, broken quoting), ``missing_field``,
``non_numeric``, ``out_of_range``, ``invalid_date``, ``duplicate_id``, ``empty_body``
(a question body empty after HTML cleaning), ``empty_title``, ``html_limit`` (HTML the
parser cannot read whole), ``invalid_encoding``, ``invalid_record``, ``empty_source``, ``malformed_gzip`` (a damaged
``.jsonl.gz``: the records before the damage are kept), and, under a date split,
``missing_created`` / ``invalid_created`` (a question without a readable creation date).
The full list with examples is in ``docs/input-validation.md``.
"""

from __future__ import annotations

from collections import Counter

from qaembed.errors import DataError

MAX_EXAMPLES_PER_REASON = 3


class BadRecordPolicy:
    """Raise bad-record errors, or (``skip=True``) count them by reason and go on."""

    def __init__(self, skip: bool = False):
        self.skip = skip
        self.counts: Counter[str] = Counter()
        self.examples: dict[str, list[str]] = {}

    def reject(self, error: DataError, reason: str, *, count: int = 1) -> None:
        """Raise ``error``, or record it under ``reason`` when skipping is allowed.

        ``count`` is how many input records the error cost (e.g. the rows after a break in
        the XML that could not be read); it is at least 1.
        """
        if not self.skip:
            raise error
        self.counts[reason] += max(1, count)
        examples = self.examples.setdefault(reason, [])
        if len(examples) < MAX_EXAMPLES_PER_REASON:
            examples.append(str(error))

    def summary(self) -> dict[str, object]:
        """``{"counts": {reason: n}, "examples": {reason: [message, ...]}}`` (sorted by reason)."""
        return {
            "counts": dict(sorted(self.counts.items())),
            "examples": {reason: self.examples[reason] for reason in sorted(self.examples)},
        }
