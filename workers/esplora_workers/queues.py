"""Which queue runs which stage: models that want a GPU on ``gpu``, the rest on ``cpu``."""

from __future__ import annotations

from esplora.db.enums import Stage

GPU = "gpu"
CPU = "cpu"
QUEUES = (GPU, CPU)

STAGE_QUEUE: dict[Stage, str] = {
    Stage.EXTRACT: CPU,
    Stage.DETECT: GPU,
    Stage.DEPTH: GPU,
    Stage.RELATE: CPU,
    Stage.VALIDATE: CPU,
}

STAGE_TASK = "esplora.pipeline.run_stage"
TRAIN_TASK = "esplora.train.run"  # gpu queue: one run, checkpoints enqueue validations
VALIDATE_TASK = "esplora.train.validate"  # gpu queue: one checkpoint's spatial accuracy
