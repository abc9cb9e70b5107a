"""What every stage runner needs: the store, settings, and backends loaded once per process."""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass, field
from datetime import timedelta
from functools import cached_property
from pathlib import Path
from typing import Any

from esplora.backends.base import PhaseClock
from esplora.db.engine import Store
from esplora.settings import Settings


def worker_name() -> str:
    """A name for this process in claims and heartbeats: host and pid."""
    return f"{socket.gethostname()}:{os.getpid()}"


@dataclass
class StageContext:
    """The composition root of a pipeline run (inline, or one worker process).

    Backends are created on first use and cached for the life of the context, so a worker
    process loads each model once however many batches it runs.
    """

    store: Store
    settings: Settings
    worker: str = field(default_factory=worker_name)
    clock: PhaseClock = field(default_factory=PhaseClock)  # the stages' own phases (decode)

    @property
    def artefacts_dir(self) -> Path:
        return self.settings.artefacts_dir

    @property
    def lease(self) -> timedelta:
        """How long a claim holds before another worker may take it back."""
        return timedelta(seconds=self.settings.stage_lease_s)

    @cached_property
    def backend_options(self) -> Any:
        from esplora.backends.registry import BackendOptions

        s = self.settings
        return BackendOptions(
            profile=s.profile,
            models_dir=s.resolved_models_dir,
            device=s.device,
            box_threshold=s.box_threshold,
            text_threshold=s.text_threshold,
            max_objects=s.max_objects,
            batch_size=s.batch_size,
            error_rates=s.error_rates,
        )

    def backend(self, kind: str, name: str) -> Any:
        """The backend ``name`` of ``kind``, created once per process by the registry."""
        from esplora.backends.registry import create

        return create(kind, name, self.backend_options)

    def drain_clocks(self) -> dict[str, float]:
        """Seconds per phase since the last call, from this context and its loaded backends."""
        totals = self.clock.drain()
        for name in ("extractor", "detector", "depth", "generator"):
            backend = self.__dict__.get(name)  # only backends already loaded
            clock = getattr(backend, "clock", None)
            for phase, seconds in (clock.drain() if clock else {}).items():
                totals[phase] = totals.get(phase, 0.0) + seconds
        return totals

    @cached_property
    def extractor(self) -> Any:
        return self.backend("extractor", self.settings.extractor)

    @cached_property
    def detector(self) -> Any:
        return self.backend("detector", self.settings.detector)

    @cached_property
    def depth(self) -> Any:
        return self.backend("depth", self.settings.depth_model)

    @cached_property
    def generator(self) -> Any:
        return self.generator_with()

    def generator_with(self, adapter: str = "", scale: float = 1.0) -> Any:
        """The configured generator, with a LoRA adapter loaded at ``scale`` when one is given
        (the registry caches one instance per configuration)."""
        from dataclasses import replace

        from esplora.backends.registry import create

        options = replace(
            self.backend_options,
            model_id=self.settings.generator_model_id,
            adapter=adapter or None,
            adapter_scale=scale,
        )
        return create("generator", self.settings.generator, options)
