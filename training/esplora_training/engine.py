"""The training engine: :func:`train` runs (or resumes) a LoRA training run in ``run_dir``.

One run directory holds everything: ``config.yaml`` (the validated config), ``run.json``
(model, data and bucket summary), ``cache/`` (latents, text embeddings), ``checkpoints/``
(the last ``keep_last``), ``metrics.jsonl`` (one line per optimizer step) and, at the end,
``adapter/`` in diffusers' LoRA format. Calling :func:`train` again on the same directory
resumes from the newest checkpoint and ends with the very adapter an uninterrupted run gives:
the weights, optimizer, scheduler and RNG states are restored, and the data order, caption
dropout, timesteps and noise are pure functions of (seed, micro-step, process).

accelerate drives the device, mixed precision, gradient accumulation and multi-GPU data
parallelism (``accelerate launch``); callbacks run on the main process only.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from esplora.backends.lora import add_lora, save_adapter
from esplora.errors import EsploraError
from esplora_training import checkpoints as ckpt
from esplora_training.cache import FeatureCache, Feeder, cache_dir, fill_latents, fill_text
from esplora_training.config import (
    RUN_CONTROL_FIELDS,
    TrainingConfig,
    config_digest,
    dump_config,
    resolve_model,
)
from esplora_training.data import (
    BatchPlan,
    ExampleLike,
    Item,
    dataset_digest,
    drop_captions,
    make_buckets,
    prepare_items,
)
from esplora_training.families import Family, Tensors, load_family
from esplora_training.runtime import (
    MetricsLog,
    make_accelerator,
    step_generator,
    trim_metrics,
    weight_dtype,
)

__all__ = ["TrainResult", "Trainer", "train"]

StepHook = Callable[[int, dict[str, float]], None]
CheckpointHook = Callable[[int, Path], None]
StopHook = Callable[[], bool]
ADAPTER_DIR = "adapter"
PROBE_STREAM = 3  # the probe's generator stream (runtime.STEP_STREAM is 2, data.py's 1)


@dataclass(frozen=True, slots=True)
class TrainResult:
    """How a call to :func:`train` ended."""

    adapter_dir: Path | None  # run_dir/adapter when the run finished, None when stopped early
    steps: int  # optimizer steps done, in all calls together
    metrics: dict[str, float] = field(default_factory=dict)  # the last step's
    stopped: bool = False  # should_stop asked to stop (a checkpoint was written first)
    resumed_from: int | None = None  # the checkpoint's step this call started from
    checkpoint: Path | None = None  # the newest checkpoint


def train(
    config: TrainingConfig,
    examples: Sequence[ExampleLike],
    run_dir: Path,
    *,
    on_step: StepHook | None = None,
    on_checkpoint: CheckpointHook | None = None,
    should_stop: StopHook | None = None,
) -> TrainResult:
    """Train ``config``'s LoRA on ``examples`` in ``run_dir``, resuming from its newest
    checkpoint. ``on_step(step, metrics)`` follows each optimizer step, ``on_checkpoint(step,
    directory)`` each checkpoint; when ``should_stop()`` turns true the run checkpoints and
    returns with ``stopped=True``. Raises :class:`EsploraError` for unusable input."""
    trainer = Trainer(config, examples, run_dir)
    return trainer.run(on_step=on_step, on_checkpoint=on_checkpoint, should_stop=should_stop)


class Trainer:
    """One call of :func:`train`, in steps small enough to read (and for tests to reach in)."""

    def __init__(
        self, config: TrainingConfig, examples: Sequence[ExampleLike], run_dir: Path
    ) -> None:
        if not examples:
            raise EsploraError("no training examples: the snapshot split is empty")
        self.config, self.examples, self.run_dir = config, list(examples), Path(run_dir)
        self.model: Any = None  # the denoiser with its LoRA adapter, once set up
        self.family: Family | None = None
        self._probe_batch: Tensors | None = None
        self._grad_norm = float("nan")

    # --- set-up ------------------------------------------------------------------------------

    def run(
        self,
        *,
        on_step: StepHook | None = None,
        on_checkpoint: CheckpointHook | None = None,
        should_stop: StopHook | None = None,
    ) -> TrainResult:
        """Set up, resume, train to ``max_steps`` (or until stopped), save the adapter."""
        self.run_dir.mkdir(parents=True, exist_ok=True)
        self.accelerator = make_accelerator(self.config, self.run_dir)
        self.items = self._items()
        latest = ckpt.newest_checkpoint(self.run_dir)
        start = self._check_resume(latest)
        self._write_run_files()
        if latest is not None and start >= self.config.max_steps:
            return self._finish(start, latest, {}, resumed_from=start)
        self._setup_model()
        if latest is not None:
            self._restore(latest)
        return self._loop(start, on_step, on_checkpoint, should_stop)

    def _items(self) -> list[Item]:
        config = self.config
        buckets = config.buckets or make_buckets(
            config.resolution, config.bucket_step, config.aspect_ratios
        )
        try:
            items = prepare_items(self.examples, [(int(w), int(h)) for w, h in buckets])
        except (OSError, ValueError) as error:
            raise EsploraError(f"cannot read the training images: {error}") from error
        self.plan = BatchPlan(items, config.batch_size, config.seed)
        return items

    def _check_resume(self, latest: Path | None) -> int:
        """The step to start from; refuses a checkpoint of another config or dataset."""
        if latest is None:
            return 0
        info = ckpt.checkpoint_info(latest)
        if info.get("dataset_digest") != dataset_digest(self.items):
            raise EsploraError(
                f"{self.run_dir} has checkpoints of other training data (images, captions or "
                "their order changed): use a new run directory"
            )
        if info.get("config_digest") != config_digest(self.config):
            saved = info.get("config", {})
            mine = self.config.model_dump(mode="json")
            changed = sorted(
                k for k in mine if k not in RUN_CONTROL_FIELDS and saved.get(k) != mine[k]
            )
            raise EsploraError(
                f"{self.run_dir} has checkpoints of another config (changed: "
                f"{', '.join(changed) or 'unknown'}): only run-control keys may change on resume"
            )
        return int(info["step"])

    def _write_run_files(self) -> None:
        if not self.accelerator.is_main_process:
            return
        counts: dict[str, int] = {}
        for item in self.items:
            key = f"{item.bucket[0]}x{item.bucket[1]}"
            counts[key] = counts.get(key, 0) + 1
        summary = {
            "base_model": resolve_model(self.config).location,
            "config_digest": config_digest(self.config),
            "dataset_digest": dataset_digest(self.items),
            "examples": len(self.items),
            "buckets": counts,
            "batches_per_epoch": self.plan.per_epoch,
            "processes": self.accelerator.num_processes,
        }
        (self.run_dir / "config.yaml").write_text(dump_config(self.config), encoding="utf-8")
        text = json.dumps(summary, indent=2, sort_keys=True) + "\n"
        (self.run_dir / "run.json").write_text(text, encoding="utf-8")

    def _setup_model(self) -> None:
        """Load the pipeline, fill the caches, add the LoRA, build and prepare the optimizer."""
        import torch
        from diffusers.optimization import get_scheduler

        config, accelerator = self.config, self.accelerator
        torch.manual_seed(config.seed)
        self.source = resolve_model(config)
        dtype = weight_dtype(config.mixed_precision)
        self.family = load_family(config, self.source, accelerator.device, dtype)
        self.feeder = self._feeder(self.family)
        model = self.family.denoiser
        add_lora(model, config.rank, config.lora_alpha, config.lora_targets,
                 dropout=config.lora_dropout)  # fmt: skip
        self.params = [p for p in model.parameters() if p.requires_grad]
        for param in self.params:  # LoRA weights train in fp32 whatever the base's dtype
            param.data = param.data.float()
        if config.gradient_checkpointing:
            model.enable_gradient_checkpointing()
        model.train()
        optimizer = torch.optim.AdamW(
            self.params, lr=config.learning_rate, betas=(config.adam_beta1, config.adam_beta2),
            weight_decay=config.weight_decay, eps=config.adam_epsilon,
        )  # fmt: skip
        # The optimizer and scheduler stay unwrapped: gradients are applied here once per
        # accumulation window (see _apply_gradients), the scheduler steps once per step.
        self.optimizer = optimizer
        self.scheduler = get_scheduler(
            config.lr_scheduler, optimizer, num_warmup_steps=config.lr_warmup_steps,
            num_training_steps=config.max_steps,
        )  # fmt: skip
        self.model = accelerator.prepare(model)

    def _feeder(self, family: Family) -> Feeder:
        """Fill the caches (the main process first; the others then find them full)."""
        config = self.config
        identity = (self.source.location, config.family, family.dtype,
                    getattr(family, "max_sequence_length", None))  # fmt: skip
        memory = config.cache_memory_mib * 2**20
        cache = FeatureCache(cache_dir(self.run_dir, identity), memory_bytes=memory)
        family.encoders_to_device()  # before the denoiser: T5-XXL and Flux fit one at a time
        with self.accelerator.main_process_first():
            if config.cache_latents:
                fill_latents(cache, self.items, family, config.cache_batch_size)
            if config.cache_text:
                texts = [item.text for item in self.items] + [""]  # "": a dropped caption
                fill_text(cache, texts, family, config.cache_batch_size)
        family.free(text=config.cache_text, vae=config.cache_latents)
        return Feeder(family, self.items, cache, cached_latents=config.cache_latents,
                      cached_text=config.cache_text)  # fmt: skip

    def _restore(self, latest: Path) -> None:
        """Weights, optimizer, scheduler, scaler and RNG states of a checkpoint."""
        assert self.family is not None
        state = ckpt.read_state(latest)
        ckpt.restore_lora(self.unwrapped, latest, self.family.role)
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["lr_scheduler"])
        scaler = getattr(self.accelerator, "scaler", None)
        if scaler is not None and state.get("scaler") is not None:
            scaler.load_state_dict(state["scaler"])
        rng = ckpt.read_rng(latest, self.accelerator.process_index)
        if rng is not None:
            ckpt.restore_rng(rng)
        if self.accelerator.is_main_process:
            trim_metrics(self.run_dir / "metrics.jsonl", int(state["step"]))

    @property
    def unwrapped(self) -> Any:
        """The denoiser without accelerate's wrappers (DDP), with its LoRA adapter."""
        return self.accelerator.unwrap_model(self.model)

    # --- training ----------------------------------------------------------------------------

    def _loop(
        self,
        step: int,
        on_step: StepHook | None,
        on_checkpoint: CheckpointHook | None,
        should_stop: StopHook | None,
    ) -> TrainResult:
        config, main = self.config, self.accelerator.is_main_process
        resumed_from = step if step > 0 else None
        metrics: dict[str, float] = {}
        latest = ckpt.newest_checkpoint(self.run_dir)
        with MetricsLog(self.run_dir / "metrics.jsonl", main) as log:
            while step < config.max_steps:
                metrics = self._optimizer_step(step)
                step += 1
                if config.probe_every and step % config.probe_every == 0:
                    metrics["probe_loss"] = self.probe_loss()
                log.write(step, metrics)
                if main and on_step is not None:
                    on_step(step, dict(metrics))
                stop = self._stop_requested(should_stop)
                if stop or step % config.checkpoint_every == 0 or step == config.max_steps:
                    log.flush()
                    latest = self.save_checkpoint(step, metrics)
                    if main and on_checkpoint is not None:
                        on_checkpoint(step, latest)
                if stop:
                    break
        assert latest is not None
        if step < config.max_steps:
            return TrainResult(None, step, metrics, True, resumed_from, latest)
        return self._finish(step, latest, metrics, resumed_from)

    def _optimizer_step(self, step: int) -> dict[str, float]:
        """``gradient_accumulation`` micro-steps and one optimizer step; returns the metrics."""
        import torch

        started = time.perf_counter()
        accumulation = self.config.gradient_accumulation
        losses = [self._micro_step(step * accumulation + i) for i in range(accumulation)]
        loss = self.accelerator.reduce(torch.stack(losses).mean(), reduction="mean")
        epoch, index = self.plan.position(
            (step + 1) * accumulation - 1, self.accelerator.process_index,
            self.accelerator.num_processes,
        )  # fmt: skip
        return {
            "loss": float(loss),
            "lr": float(self.scheduler.get_last_lr()[0]),
            "grad_norm": self._grad_norm,
            "epoch": epoch + (index + 1) / self.plan.per_epoch,
            "step_time_s": time.perf_counter() - started,
        }

    def _micro_step(self, micro_step: int) -> Any:
        """Forward, backward and (at the window's end) the optimizer step of one micro-batch."""
        assert self.family is not None
        config, accelerator = self.config, self.accelerator
        process, processes = accelerator.process_index, accelerator.num_processes
        indices = self.plan.batch(micro_step, process, processes)
        texts = [self.items[i].text for i in indices]
        texts = drop_captions(texts, config.caption_dropout, config.seed, micro_step, process)
        batch = self.feeder.batch(indices, texts)
        generator = step_generator(config.seed, micro_step, process)
        with accelerator.accumulate(self.model):  # no gradient sync inside the window (DDP)
            loss = self.family.loss(self.model, batch, generator)
            accelerator.backward(loss)  # divides by the accumulation; scales for fp16
            if accelerator.sync_gradients:
                self._grad_norm = self._apply_gradients()
        return loss.detach().float()

    def _apply_gradients(self) -> float:
        """Unscale (fp16), clip, step the optimizer and the scheduler, clear; the grad norm."""
        import torch

        scaler = getattr(self.accelerator, "scaler", None)
        if scaler is not None:
            scaler.unscale_(self.optimizer)
        norm = torch.nn.utils.clip_grad_norm_(self.params, self.config.max_grad_norm)
        if scaler is not None:
            scaler.step(self.optimizer)
            scaler.update()
        else:
            self.optimizer.step()
        self.scheduler.step()
        self.optimizer.zero_grad(set_to_none=True)
        return float(norm)

    def probe_loss(self) -> float:
        """The loss on a fixed batch with fixed latents, timesteps and noise (no dropout):
        the per-step loss is noisy, this one shows the trend. Changes no training state."""
        import torch

        assert self.family is not None
        if self._probe_batch is None:
            indices = self.plan.batch(0)
            self._probe_batch = self.feeder.batch(indices, [self.items[i].text for i in indices])
        generator = step_generator(self.config.seed, 0, 0, stream=PROBE_STREAM)
        self.model.eval()
        with torch.no_grad():
            loss = self.family.loss(self.model, self._probe_batch, generator)
        self.model.train()
        return float(self.accelerator.reduce(loss.detach().float(), reduction="mean"))

    def _stop_requested(self, should_stop: StopHook | None) -> bool:
        import torch

        wanted = bool(should_stop()) if should_stop and self.accelerator.is_main_process else False
        if self.accelerator.num_processes == 1:
            return wanted
        flag = torch.tensor(int(wanted), device=self.accelerator.device)
        return bool(self.accelerator.reduce(flag, reduction="sum").item() > 0)

    # --- saving ------------------------------------------------------------------------------

    def save_checkpoint(self, step: int, metrics: dict[str, float]) -> Path:
        """Write checkpoint ``step`` (whole, or not at all) and prune to ``keep_last``."""
        import torch

        def fill(partial: Path) -> None:  # the main process's part
            self._save_adapter(partial, step)
            torch.save(self._state(step), partial / ckpt.STATE_FILE)

        return ckpt.write_checkpoint(
            self.accelerator, self.run_dir, step, self.config.keep_last, fill,
            lambda: self._info(step, metrics),
        )  # fmt: skip

    def _save_adapter(self, out_dir: Path, step: int) -> None:
        import diffusers

        assert self.family is not None
        extra = {"step": step, "family": self.config.family, "examples": len(self.items),
                 "config_digest": config_digest(self.config),
                 "dataset_digest": dataset_digest(self.items)}  # fmt: skip
        pipeline_class = getattr(diffusers, self.family.pipeline_class)
        save_adapter(pipeline_class, self.unwrapped, out_dir, base=self.source.label, extra=extra)

    def _state(self, step: int) -> dict[str, Any]:
        scaler = getattr(self.accelerator, "scaler", None)
        return {
            "step": step,
            "micro_step": step * self.config.gradient_accumulation,
            "optimizer": self.optimizer.state_dict(),
            "lr_scheduler": self.scheduler.state_dict(),
            "scaler": scaler.state_dict() if scaler is not None else None,
        }

    def _info(self, step: int, metrics: dict[str, float]) -> dict[str, Any]:
        micro = step * self.config.gradient_accumulation
        epoch, index = self.plan.position(micro, 0, self.accelerator.num_processes)
        return {
            "step": step,
            "micro_step": micro,
            "data_position": {"epoch": epoch, "batch": index, "per_epoch": self.plan.per_epoch},
            "processes": self.accelerator.num_processes,
            "metrics": metrics,
            "config_digest": config_digest(self.config),
            "dataset_digest": dataset_digest(self.items),
            "config": self.config.model_dump(mode="json"),
            "saved_at": time.time(),
        }

    def _finish(
        self, step: int, latest: Path, metrics: dict[str, float], resumed_from: int | None
    ) -> TrainResult:
        adapter = self.run_dir / ADAPTER_DIR
        if self.accelerator.is_main_process:
            ckpt.copy_adapter(latest, adapter)
        self.accelerator.wait_for_everyone()
        metrics = metrics or dict(ckpt.checkpoint_info(latest).get("metrics", {}))
        return TrainResult(adapter, step, metrics, False, resumed_from, latest)
