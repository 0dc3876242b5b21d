"""The loss-comparison suite: a grid of training runs compared fairly, then reported.

* :mod:`qaembed.suite.grid` — presets, grid entries, :class:`SuiteConfig`, run expansion;
* :mod:`qaembed.suite.runner` — the resumable runner (one folder per run, failures recorded);
* :mod:`qaembed.suite.stats` — intervals, paired permutation test, Holm-Bonferroni.

The report is built by :func:`qaembed.report.build_report` from the suite folder alone.
The command line is ``qaembed suite`` (see ``docs/suite.md``).
"""
