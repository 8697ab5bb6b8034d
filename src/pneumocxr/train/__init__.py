"""Training step: config -> run directory, one module per part.

``pipeline`` (file lists or shards -> tf.data batches; the input pipeline), ``augment`` (the
augmentation model, where it runs, and its figures), ``prepare`` + ``shards`` (the one-time decode into uint8 TFRecord
shards, read by training and evaluation), ``features`` (the frozen layers' outputs cached on the CPU
path), ``stages`` (fit one stage: precision, strategy, optimiser, checkpoints, resume), ``clock`` (wall
time summed over the processes of a resumed run), ``backup``
(crash-consistent checkpoints), ``shift`` (the shift validation), ``calibrate`` (Platt / temperature
folded into the model), ``run`` (a whole run), ``score`` (a run scored on a split), ``sweep`` (several runs
in one table). The names below are the step's public face.
"""

from __future__ import annotations

from pneumocxr.train.run import RunExistsError, train_run
from pneumocxr.train.score import evaluate_dir, evaluate_run
from pneumocxr.train.sweep import run_sweep

__all__ = ["RunExistsError", "evaluate_dir", "evaluate_run", "run_sweep", "train_run"]
