"""Checkpoints: the adapter, the optimizer and scheduler, the step and every RNG state.

A checkpoint is ``run_dir/checkpoints/step-NNNNNNNN/`` holding the adapter in diffusers' LoRA
format (so a validation job loads it with stock ``load_lora_weights``), ``training_state.pt``
(optimizer, LR scheduler, gradient scaler, step, data position), one ``rng-<process>.pt`` per
process (Python, NumPy, torch CPU and CUDA generators) and ``checkpoint.json`` (the step, the
config and the dataset digest). It is written under a ``.partial`` name and renamed when
complete, so a crash mid-write leaves no checkpoint that looks whole. The LoRA weights are
restored from the adapter file itself: they are stored once, in fp32 as trained.
"""

from __future__ import annotations

import json
import random
import re
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from esplora.backends.lora import ADAPTER_INFO, ADAPTER_NAME, ADAPTER_WEIGHTS
from esplora.errors import EsploraError

__all__ = [
    "CHECKPOINTS",
    "INFO_FILE",
    "STATE_FILE",
    "capture_rng",
    "checkpoint_info",
    "checkpoint_name",
    "copy_adapter",
    "list_checkpoints",
    "newest_checkpoint",
    "prune",
    "read_rng",
    "read_state",
    "restore_lora",
    "restore_rng",
    "write_checkpoint",
]

CHECKPOINTS = "checkpoints"
STATE_FILE = "training_state.pt"
INFO_FILE = "checkpoint.json"
_NAME = re.compile(r"^step-(\d{8,})$")


def checkpoint_name(step: int) -> str:
    """``step-00000250``: names sort in step order."""
    return f"step-{step:08d}"


def list_checkpoints(run_dir: Path) -> list[tuple[int, Path]]:
    """The complete checkpoints of a run, oldest first, as (step, directory)."""
    folder = run_dir / CHECKPOINTS
    found = []
    for path in folder.iterdir() if folder.is_dir() else []:
        match = _NAME.match(path.name)
        if match and (path / INFO_FILE).is_file():
            found.append((int(match.group(1)), path))
    return sorted(found)


def newest_checkpoint(run_dir: Path) -> Path | None:
    """The newest complete checkpoint, or ``None``."""
    found = list_checkpoints(run_dir)
    return found[-1][1] if found else None


def checkpoint_info(directory: Path) -> dict[str, Any]:
    """The ``checkpoint.json`` of a checkpoint."""
    info: dict[str, Any] = json.loads((directory / INFO_FILE).read_text(encoding="utf-8"))
    return info


def prune(run_dir: Path, keep: int) -> list[Path]:
    """Delete all but the ``keep`` newest checkpoints (and stale partial ones); returns them."""
    removed = [path for _, path in list_checkpoints(run_dir)[:-keep]]
    folder = run_dir / CHECKPOINTS
    removed += [p for p in folder.glob(".*.partial")] if folder.is_dir() else []
    for path in removed:
        shutil.rmtree(path, ignore_errors=True)
    return removed


def write_checkpoint(
    accelerator: Any,
    run_dir: Path,
    step: int,
    keep_last: int,
    fill: Callable[[Path], None],
    info: Callable[[], dict[str, Any]],
) -> Path:
    """Checkpoint ``step``, whole or not at all: the main process ``fill``s a ``.partial``
    directory, every process adds its generator states, the main process writes ``info()``
    to ``checkpoint.json``, renames the directory into place and prunes to ``keep_last``."""
    import torch

    main = accelerator.is_main_process
    final = run_dir / CHECKPOINTS / checkpoint_name(step)
    partial = final.with_name(f".{final.name}.partial")
    if main:
        prune(run_dir, keep_last)  # stale partial directories too
        partial.mkdir(parents=True)
        fill(partial)
    accelerator.wait_for_everyone()
    torch.save(capture_rng(), partial / f"rng-{accelerator.process_index}.pt")
    accelerator.wait_for_everyone()
    if main:
        (partial / INFO_FILE).write_text(json.dumps(info(), indent=2) + "\n", encoding="utf-8")
        if final.exists():
            shutil.rmtree(final)
        partial.rename(final)
        prune(run_dir, keep_last)
    accelerator.wait_for_everyone()
    return final


def copy_adapter(checkpoint: Path, out_dir: Path) -> Path:
    """Copy a checkpoint's adapter (weights and ``esplora_adapter.json``) to ``out_dir``,
    replacing what was there, through a scratch directory."""
    scratch = out_dir.with_name(f".{out_dir.name}.partial")
    shutil.rmtree(scratch, ignore_errors=True)
    scratch.mkdir(parents=True)
    for name in (ADAPTER_WEIGHTS, ADAPTER_INFO):
        shutil.copy2(checkpoint / name, scratch / name)
    if out_dir.exists():
        shutil.rmtree(out_dir)
    scratch.rename(out_dir)
    return out_dir


# --- random number generators -------------------------------------------------------------


def capture_rng() -> dict[str, Any]:
    """The global generators' states (Python, NumPy, torch CPU and CUDA), loadable safely."""
    import torch

    name, keys, position, has_gauss, cached = np.random.get_state(legacy=True)
    assert isinstance(keys, np.ndarray)
    return {
        "python": random.getstate(),
        "numpy": {"name": name, "keys": torch.from_numpy(keys.copy()), "pos": int(position),
                  "has_gauss": int(has_gauss), "cached": float(cached)},
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
    }  # fmt: skip


def restore_rng(state: dict[str, Any]) -> None:
    """Put the global generators back where :func:`capture_rng` found them."""
    import torch

    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    saved = state["numpy"]
    keys = saved["keys"].numpy()
    np.random.set_state((saved["name"], keys, saved["pos"], saved["has_gauss"], saved["cached"]))
    torch.set_rng_state(state["torch"])
    if state["cuda"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def _load(path: Path) -> dict[str, Any]:
    import torch

    try:
        state: dict[str, Any] = torch.load(path, map_location="cpu", weights_only=True)
    except (OSError, RuntimeError, EOFError) as error:
        raise EsploraError(f"cannot read checkpoint file {path}: {error}") from error
    return state


def read_state(directory: Path) -> dict[str, Any]:
    """The ``training_state.pt`` of a checkpoint (tensors on the CPU)."""
    return _load(directory / STATE_FILE)


def read_rng(directory: Path, process: int) -> dict[str, Any] | None:
    """A process's generator states, or ``None`` when that process did not exist then."""
    path = directory / f"rng-{process}.pt"
    return _load(path) if path.is_file() else None


def restore_lora(model: Any, directory: Path, role: str) -> None:
    """Load a checkpoint's adapter file into ``model``'s LoRA adapter, exactly."""
    from peft import set_peft_model_state_dict
    from safetensors.torch import load_file

    weights = load_file(str(directory / ADAPTER_WEIGHTS), device="cpu")
    prefix = f"{role}."
    state = {k.removeprefix(prefix): v for k, v in weights.items() if k.startswith(prefix)}
    result = set_peft_model_state_dict(model, state, adapter_name=ADAPTER_NAME)
    unexpected = list(getattr(result, "unexpected_keys", []) or [])
    expected = sum(1 for name, p in model.named_parameters() if p.requires_grad)
    if unexpected or len(state) != expected:
        raise EsploraError(
            f"checkpoint {directory} does not fit this model's LoRA adapter "
            f"({len(state)} tensors for {expected} LoRA parameters, {len(unexpected)} unexpected)"
        )
