"""Every model, imported in one place so the metadata is complete (Alembic env, tests)."""

from esplora.db.base import Base, metadata
from esplora.db.detections import DetectedObject, ObjectDepth
from esplora.db.exports import ExportJob
from esplora.db.images import (
    ChangeCounter,
    Extraction,
    Image,
    ImageStage,
    IngestFailure,
    Sample,
    Source,
    WorkerHeartbeat,
)
from esplora.db.relations import CaptionClaim, GeometricRelation
from esplora.db.review import Override, ReviewVote
from esplora.db.runs import Checkpoint, EvaluationResult, EvaluationRun, RunMetric, TrainingRun
from esplora.db.snapshots import Snapshot, SnapshotMember
from esplora.db.synthetic import Generation, SpatialPrompt, Validation

__all__ = [
    "Base",
    "CaptionClaim",
    "ChangeCounter",
    "Checkpoint",
    "DetectedObject",
    "EvaluationResult",
    "EvaluationRun",
    "ExportJob",
    "Extraction",
    "Generation",
    "GeometricRelation",
    "Image",
    "ImageStage",
    "IngestFailure",
    "ObjectDepth",
    "Override",
    "ReviewVote",
    "RunMetric",
    "Sample",
    "Snapshot",
    "SnapshotMember",
    "Source",
    "SpatialPrompt",
    "TrainingRun",
    "Validation",
    "WorkerHeartbeat",
    "metadata",
]
