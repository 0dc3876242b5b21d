"""Training: typed run config, the Accelerate loop, GradCache, checkpoints, cross-process negatives.

Entry points: :func:`load_config` (YAML/JSON file + ``KEY=VALUE`` overrides -> :class:`TrainConfig`)
and :func:`train` (config + run folder -> :class:`TrainResult`). ``docs/training.md`` explains
the config keys, the run folder and resuming. Modules:

* ``config.py``      :class:`TrainConfig` and loading;
* ``loop.py``        :func:`train`, the straight-line loop;
* ``gradcache.py``   one forward/backward, plain or chunked with cached embedding gradients;
* ``distributed.py`` batch sharding and all-gather with gradient for cross-process negatives;
* ``checkpoint.py``  atomic checkpoints and exact resume;
* ``state.py``       :class:`RunState`, the loop's state (the schema of a checkpoint's ``state.json``);
* ``trackers.py``    ``metrics.jsonl`` and Accelerate's trackers (TensorBoard, W&B, MLflow).
"""

from qaembed.train.config import TrainConfig, debug_config, load_config
from qaembed.train.loop import StopTraining, TrainResult, train

__all__ = ["TrainConfig", "TrainResult", "StopTraining", "debug_config", "load_config", "train"]
