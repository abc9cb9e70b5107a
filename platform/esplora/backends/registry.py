"""The backend registry: names → factories, one instance per process and options.

A backend is registered under a kind (extractor, detector, depth) and a name, with the hub id of
its real model. :func:`create` builds it on first use and returns the same object afterwards, so
a worker loads each model once. With ``profile="tiny"`` a model-backed backend loads
``models_dir/<name>`` (written by ``esplora models make-tiny``) through the very same
``from_pretrained`` call that loads the real id. Registering imports nothing heavy: built-ins
are named by ``"module:Class"`` and imported when first created.
"""

from __future__ import annotations

import functools
import hashlib
import importlib
import json
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any

from esplora.backends.base import DepthEstimator, Detector, Extractor, Generator

__all__ = [
    "BackendError",
    "BackendKind",
    "BackendOptions",
    "BackendSpec",
    "InvalidBackendOptions",
    "ModelSource",
    "ModelUnavailable",
    "UnknownBackend",
    "clear_cache",
    "create",
    "create_depth",
    "create_detector",
    "create_extractor",
    "create_generator",
    "model_source",
    "names",
    "producer",
    "register",
    "spec",
    "specs",
    "unregister",
]

PROFILES = ("real", "tiny")


class BackendKind(StrEnum):
    """What a backend does."""

    EXTRACTOR = "extractor"
    DETECTOR = "detector"
    DEPTH = "depth"
    GENERATOR = "generator"


class BackendError(Exception):
    """Base class of the backend errors a user can act on; the message says what to do."""


class UnknownBackend(BackendError, ValueError):
    """A backend name that is not registered for its kind; the message lists the known ones."""

    def __init__(self, kind: str | None, name: str, known: tuple[str, ...]) -> None:
        listed = ", ".join(known) or "none"
        if kind is None:
            message = f"unknown backend kind {name!r}; kinds: {listed}"
        else:
            message = f"unknown {kind} backend {name!r}; registered: {listed}"
        super().__init__(message)
        self.kind, self.name, self.known = kind, name, known


class InvalidBackendOptions(BackendError, ValueError):
    """Backend options outside their domain (a profile, a threshold, a count)."""


class ModelUnavailable(BackendError, OSError):
    """A model's files could not be loaded (not cached and no hub, or no tiny model written)."""

    def __init__(self, model: str, message: str) -> None:
        super().__init__(message)
        self.model = model


@dataclass(frozen=True, slots=True)
class BackendOptions:
    """Everything a backend needs from the settings (backends never read the settings)."""

    profile: str = "real"
    models_dir: Path = Path("models")
    device: str = "auto"
    box_threshold: float = 0.35
    text_threshold: float = 0.25
    max_objects: int = 16
    model_id: str | None = None  # overrides the real id (a hub id or a local directory)
    batch_size: int = 8  # images per forward pass inside one call
    # Generators: a LoRA adapter (diffusers format, a directory) and its scale, and the memory
    # options real GPUs need (Flux.1-dev in bf16 is ~24 GB without offload).
    adapter: str | None = None
    adapter_scale: float = 1.0
    cpu_offload: bool = False
    vae_tiling: bool = False
    # Scene world: per-relation probability that the scene generator renders a relation wrong,
    # as a JSON-safe tuple of (relation, rate) pairs (imitates a real model's directional bias).
    error_rates: tuple[tuple[str, float], ...] = ()

    def __post_init__(self) -> None:
        if self.profile not in PROFILES:
            raise InvalidBackendOptions(f"profile must be one of {PROFILES}, got {self.profile!r}")
        for name in ("box_threshold", "text_threshold"):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise InvalidBackendOptions(f"{name} must be in [0, 1], got {value!r}")
        if self.max_objects < 1 or self.batch_size < 1:
            raise InvalidBackendOptions("max_objects and batch_size must be at least 1")


Factory = Callable[[BackendOptions], object]


@dataclass(frozen=True, slots=True)
class BackendSpec:
    """A registered backend: how to build it and which real model it runs (None: no model)."""

    kind: BackendKind
    name: str
    factory: Factory
    real_id: str | None = None
    description: str = ""


_REGISTRY: dict[tuple[BackendKind, str], BackendSpec] = {}
_CACHE: dict[tuple[BackendKind, str, BackendOptions], object] = {}
_LOCK = threading.RLock()


def register(
    kind: BackendKind | str,
    name: str,
    factory: Factory,
    *,
    real_id: str | None = None,
    description: str = "",
) -> BackendSpec:
    """Register (or replace) the backend ``name`` of ``kind``; returns its spec."""
    entry = BackendSpec(BackendKind(kind), name, factory, real_id, description)
    with _LOCK:
        _REGISTRY[(entry.kind, name)] = entry
        for key in [k for k in _CACHE if k[:2] == (entry.kind, name)]:
            del _CACHE[key]
    return entry


def unregister(kind: BackendKind | str, name: str) -> None:
    """Remove a registration and its cached instances (a no-op for unknown names)."""
    _ensure_builtins()
    kind = BackendKind(kind)
    with _LOCK:
        _REGISTRY.pop((kind, name), None)
        for key in [k for k in _CACHE if k[:2] == (kind, name)]:
            del _CACHE[key]


def names(kind: BackendKind | str) -> tuple[str, ...]:
    """The registered names of ``kind``, sorted."""
    _ensure_builtins()
    kind = BackendKind(kind)
    return tuple(sorted(name for k, name in _REGISTRY if k == kind))


def specs(kind: BackendKind | str | None = None) -> tuple[BackendSpec, ...]:
    """Every registered backend (of ``kind``), by kind then name."""
    _ensure_builtins()
    wanted = None if kind is None else BackendKind(kind)
    chosen = [s for s in _REGISTRY.values() if wanted in (None, s.kind)]
    order = list(BackendKind)
    return tuple(sorted(chosen, key=lambda s: (order.index(s.kind), s.name)))


def spec(kind: BackendKind | str, name: str) -> BackendSpec:
    """The spec of a registered backend; :class:`UnknownBackend` lists the known names."""
    _ensure_builtins()
    try:
        kind = BackendKind(kind)
    except ValueError:
        known = tuple(k.value for k in BackendKind)
        raise UnknownBackend(None, str(kind), known) from None
    found = _REGISTRY.get((kind, name))
    if found is None:
        raise UnknownBackend(kind.value, name, names(kind))
    return found


def create(kind: BackendKind | str, name: str, options: BackendOptions) -> object:
    """The backend ``name`` of ``kind`` for ``options``: built once per process, then cached."""
    entry = spec(kind, name)
    key = (entry.kind, name, options)
    with _LOCK:
        if key not in _CACHE:
            _CACHE[key] = entry.factory(options)
        return _CACHE[key]


def create_extractor(name: str, options: BackendOptions) -> Extractor:
    """:func:`create` for an extractor, typed."""
    backend = create(BackendKind.EXTRACTOR, name, options)
    if not isinstance(backend, Extractor):
        raise TypeError(f"backend {name!r} is not an Extractor")
    return backend


def create_detector(name: str, options: BackendOptions) -> Detector:
    """:func:`create` for a detector, typed."""
    backend = create(BackendKind.DETECTOR, name, options)
    if not isinstance(backend, Detector):
        raise TypeError(f"backend {name!r} is not a Detector")
    return backend


def create_depth(name: str, options: BackendOptions) -> DepthEstimator:
    """:func:`create` for a depth estimator, typed."""
    backend = create(BackendKind.DEPTH, name, options)
    if not isinstance(backend, DepthEstimator):
        raise TypeError(f"backend {name!r} is not a DepthEstimator")
    return backend


def create_generator(name: str, options: BackendOptions) -> Generator:
    """:func:`create` for a text-to-image generator, typed."""
    backend = create(BackendKind.GENERATOR, name, options)
    if not isinstance(backend, Generator):
        raise TypeError(f"backend {name!r} is not a Generator")
    return backend


def clear_cache() -> None:
    """Forget every built backend (tests; a worker never needs it)."""
    with _LOCK:
        _CACHE.clear()


# --- where a model comes from, and the producer string ------------------------------------


@dataclass(frozen=True, slots=True)
class ModelSource:
    """What to pass to ``from_pretrained`` and how to name the model in producer strings."""

    location: str  # a hub id or a local directory
    label: str  # "IDEA-Research/grounding-dino-tiny", "tiny/grounding-dino", or a directory name
    local: bool


def model_source(options: BackendOptions, name: str, real_id: str) -> ModelSource:
    """The model a backend loads: ``options.model_id``, the tiny twin, or the real id.

    Raises :class:`ModelUnavailable` when the tiny profile's directory was never written.
    """
    if options.model_id:
        path = Path(options.model_id).expanduser()
        if path.is_dir():
            return ModelSource(str(path.resolve()), path.resolve().name, local=True)
        return ModelSource(options.model_id, options.model_id, local=False)
    if options.profile == "tiny":
        path = options.models_dir.expanduser() / name
        if not any((path / f).is_file() for f in ("config.json", "model_index.json")):
            raise ModelUnavailable(
                f"tiny/{name}",
                f"no tiny {name!r} model in {path}: run `esplora models make-tiny "
                f"{options.models_dir}` first (or set ESPLORA_MODELS_DIR to where they are)",
            )
        return ModelSource(str(path.resolve()), f"tiny/{name}", local=True)
    return ModelSource(real_id, real_id, local=False)


_UNVERSIONED = ("_commit_hash", "_name_or_path", "transformers_version", "name_or_path")


def config_digest(config: Mapping[str, Any]) -> str:
    """A short digest of a model config, independent of where and with what it was saved."""
    kept = {k: v for k, v in config.items() if k not in _UNVERSIONED}
    text = json.dumps(kept, sort_keys=True, default=str)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:12]


def producer(source: ModelSource, config: Mapping[str, Any], revision: str | None = None) -> str:
    """``<model>@<version>``: the hub revision when known (hub ids), else the config digest."""
    version = revision[:12] if revision and not source.local else config_digest(config)
    return f"{source.label}@{version}"


def unavailable(source: ModelSource, error: BaseException) -> ModelUnavailable:
    """The clear error for a model whose files could not be loaded."""
    reason = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
    if source.local:
        message = f"cannot load model from {source.location}: {reason}"
    else:
        message = (
            f"cannot load model {source.location!r}: it is not in the local Hugging Face cache "
            f"and could not be downloaded ({reason}). Download it where the hub is reachable, or "
            f"run offline on tiny random models: `esplora models make-tiny` then `--profile tiny` "
            f"(ESPLORA_PROFILE=tiny)."
        )
    return ModelUnavailable(source.label, message)


# --- built-in backends, imported lazily -----------------------------------------------------

GROUNDING_DINO_ID = "IDEA-Research/grounding-dino-tiny"
OWLV2_ID = "google/owlv2-base-patch16-ensemble"
DEPTH_ANYTHING_ID = "depth-anything/Depth-Anything-V2-Small-hf"
VLM_ID = "allenai/Molmo2-8B"
FLUX_DEV_ID = "black-forest-labs/FLUX.1-dev"
FLUX_SCHNELL_ID = "black-forest-labs/FLUX.1-schnell"
SDXL_ID = "stabilityai/stable-diffusion-xl-base-1.0"
SCENES = "esplora.scenes.backends"

_BUILTINS: tuple[tuple[BackendKind, str, str, str | None, str], ...] = (
    (BackendKind.EXTRACTOR, "grammar", "extractors:GrammarExtractor", None,
     "caption grammar + object vocabulary (no model)"),
    (BackendKind.EXTRACTOR, "vlm", "extractors:VlmExtractor", VLM_ID,
     "an image-text-to-text model lists the objects it sees"),
    (BackendKind.DETECTOR, "grounding-dino", "detectors:GroundingDinoDetector", GROUNDING_DINO_ID,
     "Grounding DINO, open-vocabulary detection"),
    (BackendKind.DETECTOR, "owlv2", "detectors:Owlv2Detector", OWLV2_ID,
     "OWLv2, open-vocabulary detection"),
    (BackendKind.DEPTH, "depth-anything", "depth:DepthAnythingEstimator", DEPTH_ANYTHING_ID,
     "Depth Anything V2, relative depth"),
    (BackendKind.GENERATOR, "flux", "generators:FluxGenerator", FLUX_DEV_ID,
     "FLUX.1 through diffusers (dev by default; schnell with --model-id)"),
    (BackendKind.GENERATOR, "sdxl", "generators:SdxlGenerator", SDXL_ID,
     "Stable Diffusion XL through diffusers"),
    # The scene world: exact ground truth offline (esplora.scenes), no model weights.
    (BackendKind.DETECTOR, "scenes", f"{SCENES}:SceneDetector", None,
     "pixel-based detector for rendered scenes"),
    (BackendKind.DEPTH, "scenes", f"{SCENES}:SceneDepth", None,
     "depth reader for rendered scenes"),
    (BackendKind.GENERATOR, "scenes", f"{SCENES}:SceneGenerator", None,
     "renders a prompt's relations as a scene, with a per-relation error rate"),
)  # fmt: skip

_builtins_done = False


def _lazy(target: str, name: str, real_id: str | None) -> Factory:
    def factory(options: BackendOptions) -> object:
        module, _, attr = target.partition(":")
        path = module if "." in module else f"esplora.backends.{module}"
        cls = getattr(importlib.import_module(path), attr)
        return functools.partial(cls, name=name, real_id=real_id)(options)

    return factory


def _ensure_builtins() -> None:
    global _builtins_done
    with _LOCK:
        if _builtins_done:
            return
        _builtins_done = True
        for kind, name, target, real_id, description in _BUILTINS:
            if (kind, name) not in _REGISTRY:  # a registration made earlier wins
                register(kind, name, _lazy(target, name, real_id), real_id=real_id,
                         description=description)  # fmt: skip
