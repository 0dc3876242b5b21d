"""Where a run's numbers go: ``metrics.jsonl`` in the run folder, and Accelerate's trackers.

``training.trackers`` names TensorBoard, Weights & Biases and/or MLflow; :func:`check_trackers`
fails before anything heavy when one is not installed, and points MLflow at a local SQLite store
in the run folder when no ``MLFLOW_TRACKING_URI`` is set (no network).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from qaembed.errors import ConfigError
from qaembed.outputs import check_no_links, open_append

METRICS_FILE = "metrics.jsonl"

_INSTALL = {
    "wandb": "pip install wandb (set WANDB_MODE=offline to log without network)",
    "tensorboard": "pip install tensorboard",
    "mlflow": "pip install mlflow (or mlflow-skinny)",
}


def _installed(name: str) -> bool:
    try:
        __import__(name)
    except ImportError:
        return False
    return True


def check_trackers(trackers: list[str], run_dir: Path) -> None:
    """ConfigError naming the first tracker that is not installed; MLflow without a server logs to the run folder."""
    for name in trackers:
        if not _installed(name):
            raise ConfigError(f"training.trackers: {name!r} is not installed; {_INSTALL[name]}")
    if "mlflow" in trackers and not os.environ.get("MLFLOW_TRACKING_URI"):
        # no server configured: a local SQLite store in the run folder, through MLflow's SQL store
        # (sqlalchemy and alembic: in `mlflow`, not in `mlflow-skinny`)
        if not _installed("sqlalchemy"):
            raise ConfigError(
                "training.trackers: 'mlflow' without MLFLOW_TRACKING_URI logs to a local SQLite store, "
                "which needs sqlalchemy and alembic; pip install mlflow (or set MLFLOW_TRACKING_URI)")
        check_no_links(run_dir, run_dir / "tracking" / "mlflow.db")  # SQLite would open (and write) a link's target
        import mlflow

        (run_dir / "tracking").mkdir(parents=True, exist_ok=True)
        mlflow.set_tracking_uri(f"sqlite:///{(run_dir / 'tracking' / 'mlflow.db').resolve()}")


class MetricsLog:
    """Appends one JSON line per record to ``metrics.jsonl`` (main process) and logs it to the trackers."""

    def __init__(self, path: Path, accelerator: Any, trackers: list[str]) -> None:
        self.path, self.accelerator, self.trackers = path, accelerator, trackers

    def start(self, flat_config: dict[str, Any]) -> None:
        if self.trackers:
            self.accelerator.init_trackers("qaembed", config={k: str(v) for k, v in flat_config.items()})

    def __call__(self, record: dict[str, Any]) -> None:
        if self.accelerator.is_main_process:
            with open_append(self.path) as fh:  # a link planted at metrics.jsonl is refused, not followed
                fh.write(json.dumps(record) + "\n")
        if self.trackers:
            # tracker names: MLflow rejects "@", so "dev/retrieval/ndcg@10" is logged as
            # "dev/retrieval/ndcg_at_10" to every tracker (metrics.jsonl keeps the canonical names)
            self.accelerator.log({k.replace("@", "_at_"): v for k, v in record.items()
                              if k not in ("step", "total_steps")},
                                 step=record["step"])
