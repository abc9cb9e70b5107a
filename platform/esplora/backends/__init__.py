"""Model backends (extractor, detector, depth, generator) behind small protocols and a registry.

Importing this package is cheap: the built-in backends are registered by name and their modules
(and torch, transformers) are imported only when :func:`create` first builds one.
"""

from esplora.backends.base import (
    DepthEstimator,
    DetectedBox,
    DetectionResult,
    Detector,
    DroppedBox,
    ExtractedObject,
    ExtractionInput,
    Extractor,
)
from esplora.backends.registry import (
    BackendError,
    BackendKind,
    BackendOptions,
    BackendSpec,
    InvalidBackendOptions,
    ModelUnavailable,
    UnknownBackend,
    clear_cache,
    create,
    create_depth,
    create_detector,
    create_extractor,
    names,
    register,
    spec,
    specs,
)

__all__ = [
    "BackendError",
    "BackendKind",
    "BackendOptions",
    "BackendSpec",
    "DepthEstimator",
    "DetectedBox",
    "DetectionResult",
    "Detector",
    "DroppedBox",
    "ExtractedObject",
    "ExtractionInput",
    "Extractor",
    "InvalidBackendOptions",
    "ModelUnavailable",
    "UnknownBackend",
    "clear_cache",
    "create",
    "create_depth",
    "create_detector",
    "create_extractor",
    "names",
    "register",
    "spec",
    "specs",
]
