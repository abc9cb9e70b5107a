"""LoRA training for Flux.1 and SDXL (diffusers + peft + accelerate), and its jobs.

The engine's public entry points (docs/training.md):

- :func:`esplora_training.config.load_config` — a validated :class:`TrainingConfig` from a
  shipped name (``flux``, ``sdxl``, ``tiny-flux``, ``tiny-sdxl``) or a YAML path, plus overrides;
- :func:`esplora_training.engine.train` — train (or resume) in a run directory; returns a
  :class:`~esplora_training.engine.TrainResult`;
- :class:`esplora_training.data.Example` — one training pair.

Importing this package imports no ML library; the modules import torch, diffusers and peft
inside their functions.
"""
