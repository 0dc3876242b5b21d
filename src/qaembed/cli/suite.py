"""``qaembed suite``: run the fair loss-comparison grid and write its report.

    qaembed suite [--config FILE] [--preset quick|full] [--losses a,b] [--seeds N] [--data DIR-or-SOURCES]
                  [--model NAME] [--out runs/suite] [--report-only]
    qaembed suite report DIR        # rebuild report.md/html, results.csv/json and plots from DIR

Re-running the same command skips finished runs and redoes unfinished or failed ones.
See ``docs/suite.md``.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Optional

import typer

DEFAULT_OUT = Path("runs/suite")


def _duration(seconds: float) -> str:
    seconds = int(round(seconds))
    return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m" if seconds >= 3600 else f"{seconds // 60}m{seconds % 60:02d}s"


class _Clock:
    """Elapsed time and an ETA from the mean time of the runs done in this invocation."""

    def __init__(self) -> None:
        self.started = time.monotonic()
        self.total = self.done = self.worked = 0
        self.run_started = self.started

    def eta(self) -> str:
        remaining = self.total - self.done
        if not self.worked or remaining <= 0:
            return "?" if remaining > 0 else "0m00s"
        per_run = (time.monotonic() - self.started) / self.worked
        return _duration(per_run * remaining)

    def elapsed(self) -> str:
        return _duration(time.monotonic() - self.started)


class RichSuiteProgress:
    """On a terminal: one overall bar over runs (done / total, elapsed, ETA) and a step bar for the current run."""

    def __init__(self, progress) -> None:
        self.progress = progress
        self.overall = None
        self.current = None

    def message(self, text: str) -> None:
        self.progress.console.print(text, style="cyan", markup=False, highlight=False)

    def suite_started(self, total_runs: int) -> None:
        self.overall = self.progress.add_task("suite: runs", total=total_runs)

    def run_started(self, spec) -> None:
        action = "training" if spec.kind == "train" else "evaluating"
        self.current = self.progress.add_task(f"{spec.run_id} ({action})", total=None)

    def run_planned(self, total_steps: int) -> None:
        if self.current is not None:
            self.progress.update(self.current, total=total_steps)

    def run_advanced(self, step: int) -> None:
        if self.current is not None:
            self.progress.update(self.current, completed=step)

    def run_finished(self, spec, status: str) -> None:
        if self.current is not None:
            self.progress.remove_task(self.current)
            self.current = None
        style = {"ok": "green", "failed": "red", "skipped": "dim"}[status]
        self.progress.console.print(f"[{style}]{status:>7}[/{style}] {spec.run_id}")
        self.progress.advance(self.overall)


class PlainSuiteProgress:
    """Not a terminal (CI, a log file): one plain line per event, with runs done / total, elapsed and ETA."""

    def __init__(self, echo) -> None:
        self.echo = echo
        self.clock = _Clock()
        self.total_steps: int | None = None
        self.next_report = 0.0

    def message(self, text: str) -> None:
        self.echo(text)

    def suite_started(self, total_runs: int) -> None:
        self.clock.total = total_runs
        self.echo(f"suite: {total_runs} runs")

    def run_started(self, spec) -> None:
        self.total_steps, self.next_report = None, 0.0
        self.clock.run_started = time.monotonic()
        action = "training" if spec.kind == "train" else "evaluating"
        self.echo(f"[{self.clock.done + 1}/{self.clock.total}] {spec.run_id}: {action} "
                  f"(elapsed {self.clock.elapsed()}, ETA {self.clock.eta()})")

    def run_planned(self, total_steps: int) -> None:
        self.total_steps = total_steps

    def run_advanced(self, step: int) -> None:
        if self.total_steps and step / self.total_steps >= self.next_report:
            self.echo(f"    step {step}/{self.total_steps}")
            self.next_report = step / self.total_steps + 0.25

    def run_finished(self, spec, status: str) -> None:
        self.clock.done += 1
        if status != "skipped":
            self.clock.worked += 1
        took = _duration(time.monotonic() - self.clock.run_started) if status != "skipped" else "-"
        self.echo(f"[{self.clock.done}/{self.clock.total}] {spec.run_id}: {status} ({took}; elapsed "
                  f"{self.clock.elapsed()}, ETA {self.clock.eta()})")


def _print_summary(suite_dir: Path, console) -> None:
    """The main metrics per loss (means and significance marks; intervals are in the report)."""
    from rich.table import Table as RichTable

    from qaembed.report.analysis import analyze, plain_summary
    from qaembed.report.collect import load_suite
    from qaembed.report.tables import marks, significance_note

    analysis = analyze(load_suite(suite_dir))
    table = RichTable(title="Test metrics (mean; 95% intervals in report.md)")
    table.add_column("loss", no_wrap=True)
    table.add_column("runs", justify="right")
    for name in analysis.metrics.values():
        table.add_column(name, justify="right")
    for row in analysis.rows:
        cells = [row.label, f"{row.n_ok}/{row.n_runs}"]
        for metric in analysis.metrics:
            interval = row.intervals.get(metric)
            cells.append("—" if interval is None else f"{interval.mean:.3f} {marks(analysis, row.label, metric)}".strip())
        table.add_row(*cells)
    console.print(table)
    console.print(significance_note(analysis.n_seeds), style="dim")
    for line in plain_summary(analysis):
        console.print(f"• {line}", markup=False)  # names and paths in it are text, not markup


def _build_report(suite_dir: Path, console) -> None:
    from qaembed.report import build_report

    paths = build_report(suite_dir)
    _print_summary(suite_dir, console)
    console.print(f"report: {paths.markdown}  {paths.html}  {paths.csv}", markup=False)


def register(app: typer.Typer) -> None:
    suite_app = typer.Typer(
        help="Compare losses fairly: a grid of training runs, paired significance tests, a report.",
        invoke_without_command=True,
        no_args_is_help=False,
    )

    @suite_app.callback(invoke_without_command=True)
    def suite(
        ctx: typer.Context,
        config: Optional[Path] = typer.Option(None, "--config", help="YAML suite config (fields of SuiteConfig)."),
        preset: Optional[str] = typer.Option(
            None, "--preset", help="quick (a smoke test, 2-core CPU, < 10 min; the default), cpu (an answer on a "
            "2-core CPU in < 1 h: 5 losses x 3 seeds) or full (GPU, every loss x 3 seeds)."),
        losses: Optional[str] = typer.Option(None, "--losses", help="Comma-separated grid entry names to run."),
        seeds: Optional[int] = typer.Option(None, "--seeds", min=1, help="Number of seeds per loss (0..N-1)."),
        data: Optional[str] = typer.Option(
            None, "--data", help="Prepared dataset folder, or comma-separated sources (default: Stack Exchange "
            "sites on the data search path)."),
        model: Optional[str] = typer.Option(None, "--model", help="Base model (default minilm)."),
        budget: Optional[int] = typer.Option(None, "--budget", min=1, help="Compute budget per run, in --budget-unit."),
        budget_unit: Optional[str] = typer.Option(
            None, "--budget-unit", help="texts (queries + documents encoded; the default), tokens or steps."),
        test_after: Optional[str] = typer.Option(
            None, "--test-after", help="Date split (YYYY-MM-DD): test on questions created on/after this day."),
        out: Path = typer.Option(DEFAULT_OUT, "--out", help="Suite folder (runs, data, report)."),
        report_only: bool = typer.Option(False, "--report-only", help="Only rebuild the report from --out."),
        executor: str = typer.Option(
            "local", "--executor", help="local (one run after another here) or ray (each run a Ray task; "
            "needs pip install 'qaembed\\[ray]'; see docs/scale.md)."),  # rich's escape: [ray] would be a tag
        ray_address: Optional[str] = typer.Option(
            None, "--ray-address", help="--executor ray: a running cluster (auto, or HOST:PORT); default: a "
            "local Ray started for this suite."),
        cpus_per_run: float = typer.Option(1.0, "--cpus-per-run", help="--executor ray: CPUs each run asks for."),
        gpus_per_run: float = typer.Option(
            0.0, "--gpus-per-run", help="--executor ray: GPUs each run asks for (above 1: whole GPUs, one training "
            "process each)."),
        processes_per_run: Optional[int] = typer.Option(
            None, "--processes-per-run", min=1, help="Training processes per run (torchrun; one per GPU, gloo on a "
            "CPU), the same global batch split between them. Default: --gpus-per-run when above 1, else 1."),
    ) -> None:
        """Run the loss-comparison grid (skipping finished runs), then write the report."""
        if ctx.invoked_subcommand is not None:
            return
        from rich.console import Console

        console = Console()
        if report_only:
            _build_report(out, console)
            return
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeElapsedColumn,
            TimeRemainingColumn,
        )

        from qaembed.errors import ConfigError
        from qaembed.suite.grid import build_suite_config
        from qaembed.suite.runner import run_suite

        overrides = {"data": data, "model": model, "seeds": list(range(seeds)) if seeds else None,
                     "budget": budget, "budget_unit": budget_unit, "test_after": test_after}
        suite_config = build_suite_config(preset=preset, file=config, overrides=overrides)
        if losses:
            suite_config = suite_config.select([name.strip() for name in losses.split(",") if name.strip()])
        run_executor = None
        processes = processes_per_run or (int(gpus_per_run) if gpus_per_run > 1 else 1)
        if executor == "ray" and gpus_per_run > 0 and processes > 1 and processes != gpus_per_run:
            raise ConfigError(f"--processes-per-run {processes} with --gpus-per-run {gpus_per_run:g}: a run trains "
                              "with one process per GPU")
        if executor == "ray":
            from qaembed.suite.ray_executor import RayExecutor

            run_executor = RayExecutor(address=ray_address, cpus_per_run=cpus_per_run, gpus_per_run=gpus_per_run)
        elif executor != "local":
            raise ConfigError(f"--executor {executor!r}: expected local or ray")
        elif ray_address is not None:
            raise ConfigError("--ray-address applies to --executor ray")
        columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                   TextColumn("ETA"), TimeRemainingColumn())
        try:
            if console.is_terminal:
                with Progress(*columns, console=console) as progress:
                    result = run_suite(suite_config, out, progress=RichSuiteProgress(progress), log_to_file=True,
                                       executor=run_executor, processes_per_run=processes)
            else:
                result = run_suite(suite_config, out, progress=PlainSuiteProgress(typer.echo), log_to_file=True,
                                   executor=run_executor, processes_per_run=processes)
        except KeyboardInterrupt:
            console.print("[yellow]interrupted[/yellow]: finished runs are kept; run the same command to continue.")
            sys.exit(130)
        console.print(f"{len(result.statuses)} runs ({len(result.skipped)} already finished, "
                      f"{len(result.failed)} failed)")
        _build_report(out, console)
        if result.failed:  # the report is written, but the comparison is incomplete: a script must see it
            names = ", ".join(status.run_id for status in result.failed)
            console.print(f"[red]{len(result.failed)} run(s) failed[/red]: {names}; each run's error is in its "
                          f"status.json and run.log (the report's failures table); fix the cause and run the same "
                          "command again: finished runs are kept")
            raise typer.Exit(1)

    @suite_app.command("report")
    def report(suite_dir: Path = typer.Argument(..., help="A suite folder (holds suite.json).")) -> None:
        """Rebuild report.md, report.html, results.csv/json and plots from a suite folder."""
        from rich.console import Console

        _build_report(suite_dir, Console())

    app.add_typer(suite_app, name="suite")
