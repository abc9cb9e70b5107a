"""Names stored in the database. Values are part of the schema: never rename one."""

from __future__ import annotations

from enum import StrEnum


class Origin(StrEnum):
    NATURAL = "natural"
    SYNTHETIC = "synthetic"


class SourceKind(StrEnum):
    IMG2DATASET = "img2dataset"
    FOLDER = "folder"
    COCO = "coco"
    SCENES = "scenes"
    GENERATED = "generated"


class Stage(StrEnum):
    """Pipeline stages, in order. Each image has one status row per stage."""

    EXTRACT = "extract"
    DETECT = "detect"
    DEPTH = "depth"
    RELATE = "relate"
    VALIDATE = "validate"


class StageStatus(StrEnum):
    PENDING = "pending"
    CLAIMED = "claimed"
    DONE = "done"
    FAILED = "failed"
    SKIPPED = "skipped"


class ProducerKind(StrEnum):
    """Who produced a row: a model (id + version in ``producer``), a dataset annotation, a human."""

    MODEL = "model"
    ANNOTATION = "annotation"
    HUMAN = "human"


class Agreement(StrEnum):
    """How the geometry judges what a caption claims."""

    CONFIRMED = "confirmed"
    CONTRADICTED = "contradicted"
    UNRESOLVED = "unresolved"


class PromptKind(StrEnum):
    SIMPLE = "simple"
    COMPLEX = "complex"


class ReviewTarget(StrEnum):
    SAMPLE = "sample"
    OBJECT = "object"
    RELATION = "relation"
    CLAIM = "claim"
    VALIDATION = "validation"


class VoteVerdict(StrEnum):
    ACCEPT = "accept"
    REJECT = "reject"
    FLIP = "flip"
    RELABEL = "relabel"
    CHOOSE_DETECTION = "choose_detection"


class RunStatus(StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"


class Split(StrEnum):
    TRAIN = "train"
    VALIDATION = "validation"
