"""What to do with a bad input record: fail (default) or skip it and count it by reason.

Every adapter reports a bad record through :meth:`BadRecordPolicy.reject` with a
:class:`~qaembed.errors.DataError` that names the file, line/row and field. By default
that error is raised (the CLI prints it and exits 2); with ``--skip-bad`` the record is
skipped and counted under a short reason name, and the counts (plus the first few
messages per reason) end up in ``stats.json`` and the stats table. There is no silent
fallback: a skipped record is always counted.

Reasons used by the adapters: ``malformed_xml`` (truncated or invalid XML: what parsed
before the error is kept), ``missing_field``, ``non_numeric``, ``duplicate_id``,
``empty_body``, ``empty_title``, ``invalid_encoding``, ``empty_source``.
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

    def reject(self, error: DataError, reason: str) -> None:
        """Raise ``error``, or record it under ``reason`` when skipping is allowed."""
        if not self.skip:
            raise error
        self.counts[reason] += 1
        examples = self.examples.setdefault(reason, [])
        if len(examples) < MAX_EXAMPLES_PER_REASON:
            examples.append(str(error))

    def summary(self) -> dict[str, object]:
        """``{"counts": {reason: n}, "examples": {reason: [message, ...]}}`` (sorted by reason)."""
        return {
            "counts": dict(sorted(self.counts.items())),
            "examples": {reason: self.examples[reason] for reason in sorted(self.examples)},
        }
