"""The process around a run: accelerate, dtypes, per-step generators and the metrics file."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from esplora.errors import EsploraError
from esplora_training.config import TrainingConfig

__all__ = [
    "STEP_STREAM",
    "MetricsLog",
    "make_accelerator",
    "step_generator",
    "trim_metrics",
    "weight_dtype",
]

STEP_STREAM = 2  # generator stream tag of the training steps (data.py's dropout uses 1)


def step_generator(seed: int, micro_step: int, process: int, stream: int = STEP_STREAM) -> Any:
    """The CPU generator of one micro-step's latents, timesteps and noise."""
    import torch

    digest = hashlib.sha256(f"{seed}:{stream}:{micro_step}:{process}".encode()).digest()
    return torch.Generator("cpu").manual_seed(int.from_bytes(digest[:8], "little"))


def weight_dtype(mixed_precision: str) -> Any:
    """The dtype of the frozen weights: bf16 / fp16 under mixed precision, else fp32."""
    import torch

    return {"bf16": torch.bfloat16, "fp16": torch.float16}.get(mixed_precision, torch.float32)


def make_accelerator(config: TrainingConfig, run_dir: Path) -> Any:
    """An ``Accelerator`` for this config; in a single process, free of any earlier run's."""
    import torch
    from accelerate import Accelerator
    from accelerate.state import AcceleratorState, GradientState, PartialState

    if not PartialState().use_distributed:  # a worker may train several configs in turn
        AcceleratorState._reset_state()
        GradientState._reset_state()
    try:
        accelerator = Accelerator(
            mixed_precision=config.mixed_precision,
            gradient_accumulation_steps=config.gradient_accumulation,
            project_dir=str(run_dir),
        )
    except (ValueError, RuntimeError) as error:
        raise EsploraError(f"mixed_precision {config.mixed_precision!r}: {error}") from error
    if accelerator.device.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = True
    return accelerator


class MetricsLog:
    """``metrics.jsonl``, appended to by the main process (a no-op elsewhere), open for the
    whole loop; flushed before each checkpoint (a resume rewrites the lines after it)."""

    def __init__(self, path: Path, main: bool) -> None:
        self.handle = path.open("a", encoding="utf-8") if main else None

    def write(self, step: int, metrics: dict[str, float]) -> None:
        if self.handle is not None:
            self.handle.write(json.dumps({"step": step, **metrics}) + "\n")

    def flush(self) -> None:
        if self.handle is not None:
            self.handle.flush()

    def __enter__(self) -> MetricsLog:
        return self

    def __exit__(self, *exc: object) -> None:
        if self.handle is not None:
            self.handle.close()


def trim_metrics(path: Path, step: int) -> None:
    """Drop the lines of steps after ``step`` (written by a run that died before its next
    checkpoint): the resumed run writes them again."""
    if not path.is_file():
        return
    kept = [line for line in path.read_text(encoding="utf-8").splitlines()
            if line.strip() and json.loads(line).get("step", 0) <= step]  # fmt: skip
    path.write_text("".join(f"{line}\n" for line in kept), encoding="utf-8")
