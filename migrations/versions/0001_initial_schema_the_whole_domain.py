"""initial schema: the whole domain

Revision ID: 0001
Revises:
Create Date: 2026-11-26 09:52:47.208223
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "change_counter",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("value", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_change_counter")),
    )
    # The single row that hands out change_seq values (esplora.db.changes).
    op.execute(sa.text("INSERT INTO change_counter (id, value) VALUES (1, 0)"))
    op.create_table(
        "images",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("uri", sa.Text(), nullable=False),
        sa.Column("phash", sa.String(length=32), nullable=True),
        sa.Column("width", sa.Integer(), nullable=False),
        sa.Column("height", sa.Integer(), nullable=False),
        sa.Column(
            "origin",
            sa.Enum("natural", "synthetic", name="origin", native_enum=False, length=16),
            nullable=False,
        ),
        sa.Column(
            "near_duplicate_of", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=True
        ),
        sa.Column("depth_map_uri", sa.Text(), nullable=True),
        sa.Column("depth_producer", sa.String(length=200), nullable=True),
        sa.Column(
            "created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
        sa.Column(
            "updated_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
        sa.Column("change_seq", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(
            ["near_duplicate_of"],
            ["images.id"],
            name=op.f("fk_images_near_duplicate_of_images"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_images")),
        sa.UniqueConstraint("sha256", name=op.f("uq_images_sha256")),
    )
    with op.batch_alter_table("images", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_images_change_seq"), ["change_seq"], unique=False)
        batch_op.create_index(batch_op.f("ix_images_origin"), ["origin"], unique=False)
        batch_op.create_index(batch_op.f("ix_images_phash"), ["phash"], unique=False)

    op.create_table(
        "overrides",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column(
            "target_type",
            sa.Enum(
                "sample",
                "object",
                "relation",
                "claim",
                "validation",
                name="reviewtarget",
                native_enum=False,
                length=16,
            ),
            nullable=False,
        ),
        sa.Column(
            "target_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False
        ),
        sa.Column(
            "decision",
            sa.Enum(
                "accept",
                "reject",
                "flip",
                "relabel",
                "choose_detection",
                name="voteverdict",
                native_enum=False,
                length=24,
            ),
            nullable=False,
        ),
        sa.Column(
            "values",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column("decided_by", sa.String(length=100), nullable=False),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column(
            "superseded_by", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=True
        ),
        sa.Column(
            "created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
        sa.Column("change_seq", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(
            ["superseded_by"],
            ["overrides.id"],
            name=op.f("fk_overrides_superseded_by_overrides"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_overrides")),
    )
    with op.batch_alter_table("overrides", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_overrides_change_seq"), ["change_seq"], unique=False)
        batch_op.create_index(
            batch_op.f("ix_overrides_target_type"), ["target_type", "target_id"], unique=False
        )

    op.create_table(
        "snapshots",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column(
            "filter",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column("filter_json", sa.Text(), nullable=False),
        sa.Column("text_source", sa.String(length=32), nullable=False),
        sa.Column("validation_fraction", sa.Float(), nullable=False),
        sa.Column(
            "caps",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column("seed", sa.Integer(), nullable=False),
        sa.Column("content_hash", sa.String(length=64), nullable=False),
        sa.Column(
            "counts",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column("created_by", sa.String(length=100), nullable=True),
        sa.Column(
            "created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
        sa.Column("change_seq", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_snapshots")),
        sa.UniqueConstraint("name", name=op.f("uq_snapshots_name")),
    )
    with op.batch_alter_table("snapshots", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_snapshots_change_seq"), ["change_seq"], unique=False)
        batch_op.create_index(
            batch_op.f("ix_snapshots_content_hash"), ["content_hash"], unique=False
        )

    op.create_table(
        "sources",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column(
            "kind",
            sa.Enum(
                "img2dataset",
                "folder",
                "coco",
                "scenes",
                "generated",
                name="sourcekind",
                native_enum=False,
                length=16,
            ),
            nullable=False,
        ),
        sa.Column("uri", sa.Text(), nullable=True),
        sa.Column(
            "meta",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column(
            "created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_sources")),
        sa.UniqueConstraint("name", name=op.f("uq_sources_name")),
    )
    op.create_table(
        "votes",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("reviewer", sa.String(length=100), nullable=False),
        sa.Column(
            "target_type",
            sa.Enum(
                "sample",
                "object",
                "relation",
                "claim",
                "validation",
                name="reviewtarget",
                native_enum=False,
                length=16,
            ),
            nullable=False,
        ),
        sa.Column(
            "target_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False
        ),
        sa.Column(
            "verdict",
            sa.Enum(
                "accept",
                "reject",
                "flip",
                "relabel",
                "choose_detection",
                name="voteverdict",
                native_enum=False,
                length=24,
            ),
            nullable=False,
        ),
        sa.Column(
            "proposal",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column("note", sa.Text(), nullable=True),
        sa.Column(
            "created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
        sa.Column("change_seq", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_votes")),
    )
    with op.batch_alter_table("votes", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_votes_change_seq"), ["change_seq"], unique=False)
        batch_op.create_index(batch_op.f("ix_votes_reviewer"), ["reviewer"], unique=False)
        batch_op.create_index(
            batch_op.f("ix_votes_target_type"), ["target_type", "target_id"], unique=False
        )

    op.create_table(
        "worker_heartbeats",
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("hostname", sa.String(length=200), nullable=False),
        sa.Column(
            "queues",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column("pid", sa.Integer(), nullable=False),
        sa.Column(
            "started_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
        sa.Column("last_seen", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_worker_heartbeats")),
    )
    op.create_table(
        "image_stages",
        sa.Column("image_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column(
            "stage",
            sa.Enum(
                "extract",
                "detect",
                "depth",
                "relate",
                "validate",
                name="stage",
                native_enum=False,
                length=16,
            ),
            nullable=False,
        ),
        sa.Column(
            "status",
            sa.Enum(
                "pending",
                "claimed",
                "done",
                "failed",
                "skipped",
                name="stagestatus",
                native_enum=False,
                length=16,
            ),
            nullable=False,
        ),
        sa.Column("producer", sa.String(length=200), nullable=True),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("claimed_by", sa.String(length=200), nullable=True),
        sa.Column("lease_expires_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column(
            "created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
        sa.Column(
            "updated_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
        sa.Column("change_seq", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(
            ["image_id"],
            ["images.id"],
            name=op.f("fk_image_stages_image_id_images"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("image_id", "stage", name=op.f("pk_image_stages")),
    )
    with op.batch_alter_table("image_stages", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_image_stages_change_seq"), ["change_seq"], unique=False
        )
        batch_op.create_index(batch_op.f("ix_image_stages_status"), ["status"], unique=False)

    op.create_table(
        "objects",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("image_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("label", sa.String(length=100), nullable=False),
        sa.Column("phrase", sa.String(length=300), nullable=True),
        sa.Column("x0", sa.Float(), nullable=False),
        sa.Column("y0", sa.Float(), nullable=False),
        sa.Column("x1", sa.Float(), nullable=False),
        sa.Column("y1", sa.Float(), nullable=False),
        sa.Column("score", sa.Float(), nullable=True),
        sa.Column(
            "producer_kind",
            sa.Enum(
                "model", "annotation", "human", name="producerkind", native_enum=False, length=16
            ),
            nullable=False,
        ),
        sa.Column("producer", sa.String(length=200), nullable=False),
        sa.Column(
            "created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
        sa.Column("change_seq", sa.BigInteger(), nullable=False),
        sa.Column("version", sa.Integer(), server_default="1", nullable=False),
        sa.ForeignKeyConstraint(
            ["image_id"], ["images.id"], name=op.f("fk_objects_image_id_images"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_objects")),
    )
    with op.batch_alter_table("objects", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_objects_change_seq"), ["change_seq"], unique=False)
        batch_op.create_index(
            batch_op.f("ix_objects_image_id"), ["image_id", "producer"], unique=False
        )
        batch_op.create_index(batch_op.f("ix_objects_label"), ["label"], unique=False)

    op.create_table(
        "prompts",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column(
            "kind",
            sa.Enum("simple", "complex", name="promptkind", native_enum=False, length=16),
            nullable=False,
        ),
        sa.Column(
            "relations",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column("origin", sa.String(length=32), nullable=False),
        sa.Column(
            "origin_image_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=True
        ),
        sa.Column("benchmark", sa.String(length=64), nullable=True),
        sa.Column(
            "created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
        sa.Column("change_seq", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(
            ["origin_image_id"],
            ["images.id"],
            name=op.f("fk_prompts_origin_image_id_images"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_prompts")),
        sa.UniqueConstraint("text", name=op.f("uq_prompts_text")),
    )
    with op.batch_alter_table("prompts", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_prompts_benchmark"), ["benchmark"], unique=False)
        batch_op.create_index(batch_op.f("ix_prompts_change_seq"), ["change_seq"], unique=False)
        batch_op.create_index(batch_op.f("ix_prompts_kind"), ["kind"], unique=False)

    op.create_table(
        "samples",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("image_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column(
            "source_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False
        ),
        sa.Column("source_key", sa.String(length=500), nullable=False),
        sa.Column("caption", sa.Text(), nullable=False),
        sa.Column(
            "meta",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column("excluded", sa.Boolean(), nullable=False),
        sa.Column("exclusion_reason", sa.Text(), nullable=True),
        sa.Column(
            "created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
        sa.Column("change_seq", sa.BigInteger(), nullable=False),
        sa.Column("version", sa.Integer(), server_default="1", nullable=False),
        sa.ForeignKeyConstraint(
            ["image_id"], ["images.id"], name=op.f("fk_samples_image_id_images"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["source_id"],
            ["sources.id"],
            name=op.f("fk_samples_source_id_sources"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_samples")),
        sa.UniqueConstraint(
            "source_id", "source_key", name=op.f("uq_samples_source_id_source_key")
        ),
    )
    with op.batch_alter_table("samples", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_samples_change_seq"), ["change_seq"], unique=False)
        batch_op.create_index(batch_op.f("ix_samples_excluded"), ["excluded"], unique=False)
        batch_op.create_index(batch_op.f("ix_samples_image_id"), ["image_id"], unique=False)

    op.create_table(
        "training_runs",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column(
            "snapshot_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False
        ),
        sa.Column("snapshot_hash", sa.String(length=64), nullable=False),
        sa.Column(
            "config",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column(
            "status",
            sa.Enum(
                "queued",
                "running",
                "succeeded",
                "failed",
                "cancelled",
                name="runstatus",
                native_enum=False,
                length=16,
            ),
            nullable=False,
        ),
        sa.Column(
            "metrics",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column(
            "artefacts",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column("adapter_uri", sa.Text(), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column(
            "created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("change_seq", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(
            ["snapshot_id"],
            ["snapshots.id"],
            name=op.f("fk_training_runs_snapshot_id_snapshots"),
            ondelete="RESTRICT",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_training_runs")),
        sa.UniqueConstraint("name", name=op.f("uq_training_runs_name")),
    )
    with op.batch_alter_table("training_runs", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_training_runs_change_seq"), ["change_seq"], unique=False
        )

    op.create_table(
        "checkpoints",
        sa.Column("run_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("step", sa.Integer(), nullable=False),
        sa.Column("uri", sa.Text(), nullable=False),
        sa.Column(
            "created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
        sa.ForeignKeyConstraint(
            ["run_id"],
            ["training_runs.id"],
            name=op.f("fk_checkpoints_run_id_training_runs"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("run_id", "step", name=op.f("pk_checkpoints")),
    )
    op.create_table(
        "evaluation_runs",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("benchmark", sa.String(length=64), nullable=False),
        sa.Column("generator", sa.String(length=200), nullable=False),
        sa.Column(
            "training_run_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=True
        ),
        sa.Column("adapter", sa.String(length=500), nullable=False),
        sa.Column("tore", sa.String(length=16), nullable=False),
        sa.Column("rule", sa.String(length=32), nullable=False),
        sa.Column(
            "params",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column(
            "status",
            sa.Enum(
                "queued",
                "running",
                "succeeded",
                "failed",
                "cancelled",
                name="runstatus",
                native_enum=False,
                length=16,
            ),
            nullable=False,
        ),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column(
            "created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("change_seq", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(
            ["training_run_id"],
            ["training_runs.id"],
            name=op.f("fk_evaluation_runs_training_run_id_training_runs"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_evaluation_runs")),
        sa.UniqueConstraint("name", name=op.f("uq_evaluation_runs_name")),
    )
    with op.batch_alter_table("evaluation_runs", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_evaluation_runs_change_seq"), ["change_seq"], unique=False
        )

    op.create_table(
        "object_depths",
        sa.Column(
            "object_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False
        ),
        sa.Column("producer", sa.String(length=200), nullable=False),
        sa.Column("median", sa.Float(), nullable=False),
        sa.Column("mean", sa.Float(), nullable=False),
        sa.Column("p10", sa.Float(), nullable=False),
        sa.Column("p90", sa.Float(), nullable=False),
        sa.Column(
            "created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
        sa.Column("change_seq", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(
            ["object_id"],
            ["objects.id"],
            name=op.f("fk_object_depths_object_id_objects"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("object_id", "producer", name=op.f("pk_object_depths")),
    )
    with op.batch_alter_table("object_depths", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_object_depths_change_seq"), ["change_seq"], unique=False
        )

    op.create_table(
        "relations",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("image_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column(
            "subject_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False
        ),
        sa.Column(
            "object_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False
        ),
        sa.Column("axis", sa.String(length=16), nullable=False),
        sa.Column("relation", sa.String(length=16), nullable=False),
        sa.Column("soft", sa.Boolean(), nullable=False),
        sa.Column("strict", sa.Boolean(), nullable=False),
        sa.Column("margin", sa.Float(), nullable=False),
        sa.Column("rule", sa.String(length=32), nullable=False),
        sa.Column("tau", sa.Float(), nullable=False),
        sa.Column("depth_gap", sa.Float(), nullable=False),
        sa.Column("producer", sa.String(length=200), nullable=False),
        sa.Column(
            "created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
        sa.Column("change_seq", sa.BigInteger(), nullable=False),
        sa.Column("version", sa.Integer(), server_default="1", nullable=False),
        sa.ForeignKeyConstraint(
            ["image_id"],
            ["images.id"],
            name=op.f("fk_relations_image_id_images"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["object_id"],
            ["objects.id"],
            name=op.f("fk_relations_object_id_objects"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["subject_id"],
            ["objects.id"],
            name=op.f("fk_relations_subject_id_objects"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_relations")),
        sa.UniqueConstraint(
            "subject_id",
            "object_id",
            "axis",
            "rule",
            "tau",
            "depth_gap",
            name=op.f("uq_relations_subject_id_object_id_axis_rule_tau_depth_gap"),
        ),
    )
    with op.batch_alter_table("relations", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_relations_change_seq"), ["change_seq"], unique=False)
        batch_op.create_index(
            batch_op.f("ix_relations_image_id"), ["image_id", "relation"], unique=False
        )
        batch_op.create_index(batch_op.f("ix_relations_relation"), ["relation"], unique=False)
        batch_op.create_index(batch_op.f("ix_relations_strict"), ["strict"], unique=False)

    op.create_table(
        "run_metrics",
        sa.Column("run_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("step", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("value", sa.Float(), nullable=False),
        sa.ForeignKeyConstraint(
            ["run_id"],
            ["training_runs.id"],
            name=op.f("fk_run_metrics_run_id_training_runs"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("run_id", "step", "name", name=op.f("pk_run_metrics")),
    )
    op.create_table(
        "snapshot_members",
        sa.Column(
            "snapshot_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False
        ),
        sa.Column(
            "sample_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False
        ),
        sa.Column("image_sha256", sa.String(length=64), nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("text_source", sa.String(length=32), nullable=False),
        sa.Column(
            "relations",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column("review_state", sa.String(length=32), nullable=False),
        sa.Column(
            "split",
            sa.Enum("train", "validation", name="split", native_enum=False, length=16),
            nullable=False,
        ),
        sa.ForeignKeyConstraint(
            ["sample_id"],
            ["samples.id"],
            name=op.f("fk_snapshot_members_sample_id_samples"),
            ondelete="RESTRICT",
        ),
        sa.ForeignKeyConstraint(
            ["snapshot_id"],
            ["snapshots.id"],
            name=op.f("fk_snapshot_members_snapshot_id_snapshots"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("snapshot_id", "sample_id", name=op.f("pk_snapshot_members")),
    )
    op.create_table(
        "claims",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column(
            "sample_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False
        ),
        sa.Column("clause_index", sa.Integer(), nullable=False),
        sa.Column("clause_text", sa.Text(), nullable=False),
        sa.Column("relation", sa.String(length=16), nullable=False),
        sa.Column("phrase", sa.String(length=64), nullable=False),
        sa.Column("subject_text", sa.Text(), nullable=False),
        sa.Column("object_text", sa.Text(), nullable=False),
        sa.Column("subject_label", sa.String(length=100), nullable=False),
        sa.Column("object_label", sa.String(length=100), nullable=False),
        sa.Column(
            "subject_object_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=True
        ),
        sa.Column(
            "object_object_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=True
        ),
        sa.Column(
            "geometric_relation_id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            nullable=True,
        ),
        sa.Column(
            "agreement",
            sa.Enum(
                "confirmed",
                "contradicted",
                "unresolved",
                name="agreement",
                native_enum=False,
                length=16,
            ),
            nullable=False,
        ),
        sa.Column(
            "created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
        sa.Column("change_seq", sa.BigInteger(), nullable=False),
        sa.Column("version", sa.Integer(), server_default="1", nullable=False),
        sa.ForeignKeyConstraint(
            ["geometric_relation_id"],
            ["relations.id"],
            name=op.f("fk_claims_geometric_relation_id_relations"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["object_object_id"],
            ["objects.id"],
            name=op.f("fk_claims_object_object_id_objects"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["sample_id"],
            ["samples.id"],
            name=op.f("fk_claims_sample_id_samples"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["subject_object_id"],
            ["objects.id"],
            name=op.f("fk_claims_subject_object_id_objects"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_claims")),
        sa.UniqueConstraint(
            "sample_id",
            "clause_index",
            "subject_label",
            "object_label",
            name=op.f("uq_claims_sample_id_clause_index_subject_label_object_label"),
        ),
    )
    with op.batch_alter_table("claims", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_claims_agreement"), ["agreement"], unique=False)
        batch_op.create_index(batch_op.f("ix_claims_change_seq"), ["change_seq"], unique=False)
        batch_op.create_index(batch_op.f("ix_claims_relation"), ["relation"], unique=False)

    op.create_table(
        "evaluation_results",
        sa.Column(
            "evaluation_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False
        ),
        sa.Column("relation", sa.String(length=16), nullable=False),
        sa.Column("images", sa.Integer(), nullable=False),
        sa.Column("soft_accuracy", sa.Float(), nullable=False),
        sa.Column("strict_accuracy", sa.Float(), nullable=False),
        sa.Column("score", sa.Float(), nullable=True),
        sa.ForeignKeyConstraint(
            ["evaluation_id"],
            ["evaluation_runs.id"],
            name=op.f("fk_evaluation_results_evaluation_id_evaluation_runs"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("evaluation_id", "relation", name=op.f("pk_evaluation_results")),
    )
    op.create_table(
        "generations",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column(
            "prompt_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False
        ),
        sa.Column("generator", sa.String(length=200), nullable=False),
        sa.Column("adapter", sa.String(length=500), nullable=False),
        sa.Column("adapter_scale", sa.Float(), nullable=False),
        sa.Column("tore", sa.String(length=16), nullable=False),
        sa.Column("prompt_used", sa.Text(), nullable=False),
        sa.Column("seed", sa.Integer(), nullable=False),
        sa.Column("steps", sa.Integer(), nullable=False),
        sa.Column("guidance", sa.Float(), nullable=False),
        sa.Column("width", sa.Integer(), nullable=False),
        sa.Column("height", sa.Integer(), nullable=False),
        sa.Column("image_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=True),
        sa.Column(
            "evaluation_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=True
        ),
        sa.Column(
            "created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
        sa.Column("change_seq", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(
            ["evaluation_id"],
            ["evaluation_runs.id"],
            name=op.f("fk_generations_evaluation_id_evaluation_runs"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["image_id"],
            ["images.id"],
            name=op.f("fk_generations_image_id_images"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["prompt_id"],
            ["prompts.id"],
            name=op.f("fk_generations_prompt_id_prompts"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_generations")),
        sa.UniqueConstraint(
            "prompt_id",
            "generator",
            "adapter",
            "adapter_scale",
            "tore",
            "seed",
            name=op.f("uq_generations_prompt_id_generator_adapter_adapter_scale_tore_seed"),
        ),
    )
    with op.batch_alter_table("generations", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_generations_change_seq"), ["change_seq"], unique=False)

    op.create_table(
        "validations",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column(
            "generation_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False
        ),
        sa.Column("rule", sa.String(length=32), nullable=False),
        sa.Column("tau", sa.Float(), nullable=False),
        sa.Column("depth_gap", sa.Float(), nullable=False),
        sa.Column("producer", sa.String(length=400), nullable=False),
        sa.Column("strict", sa.Boolean(), nullable=False),
        sa.Column("soft", sa.Boolean(), nullable=False),
        sa.Column("fraction_strict", sa.Float(), nullable=False),
        sa.Column("fraction_soft", sa.Float(), nullable=False),
        sa.Column(
            "per_relation",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column(
            "created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
        sa.Column("change_seq", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(
            ["generation_id"],
            ["generations.id"],
            name=op.f("fk_validations_generation_id_generations"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_validations")),
        sa.UniqueConstraint(
            "generation_id",
            "rule",
            "tau",
            "depth_gap",
            "producer",
            name=op.f("uq_validations_generation_id_rule_tau_depth_gap_producer"),
        ),
    )
    with op.batch_alter_table("validations", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_validations_change_seq"), ["change_seq"], unique=False)
        batch_op.create_index(batch_op.f("ix_validations_strict"), ["strict"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("validations", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_validations_strict"))
        batch_op.drop_index(batch_op.f("ix_validations_change_seq"))

    op.drop_table("validations")
    with op.batch_alter_table("generations", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_generations_change_seq"))

    op.drop_table("generations")
    op.drop_table("evaluation_results")
    with op.batch_alter_table("claims", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_claims_relation"))
        batch_op.drop_index(batch_op.f("ix_claims_change_seq"))
        batch_op.drop_index(batch_op.f("ix_claims_agreement"))

    op.drop_table("claims")
    op.drop_table("snapshot_members")
    op.drop_table("run_metrics")
    with op.batch_alter_table("relations", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_relations_strict"))
        batch_op.drop_index(batch_op.f("ix_relations_relation"))
        batch_op.drop_index(batch_op.f("ix_relations_image_id"))
        batch_op.drop_index(batch_op.f("ix_relations_change_seq"))

    op.drop_table("relations")
    with op.batch_alter_table("object_depths", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_object_depths_change_seq"))

    op.drop_table("object_depths")
    with op.batch_alter_table("evaluation_runs", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_evaluation_runs_change_seq"))

    op.drop_table("evaluation_runs")
    op.drop_table("checkpoints")
    with op.batch_alter_table("training_runs", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_training_runs_change_seq"))

    op.drop_table("training_runs")
    with op.batch_alter_table("samples", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_samples_image_id"))
        batch_op.drop_index(batch_op.f("ix_samples_excluded"))
        batch_op.drop_index(batch_op.f("ix_samples_change_seq"))

    op.drop_table("samples")
    with op.batch_alter_table("prompts", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_prompts_kind"))
        batch_op.drop_index(batch_op.f("ix_prompts_change_seq"))
        batch_op.drop_index(batch_op.f("ix_prompts_benchmark"))

    op.drop_table("prompts")
    with op.batch_alter_table("objects", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_objects_label"))
        batch_op.drop_index(batch_op.f("ix_objects_image_id"))
        batch_op.drop_index(batch_op.f("ix_objects_change_seq"))

    op.drop_table("objects")
    with op.batch_alter_table("image_stages", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_image_stages_status"))
        batch_op.drop_index(batch_op.f("ix_image_stages_change_seq"))

    op.drop_table("image_stages")
    op.drop_table("worker_heartbeats")
    with op.batch_alter_table("votes", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_votes_target_type"))
        batch_op.drop_index(batch_op.f("ix_votes_reviewer"))
        batch_op.drop_index(batch_op.f("ix_votes_change_seq"))

    op.drop_table("votes")
    op.drop_table("sources")
    with op.batch_alter_table("snapshots", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_snapshots_content_hash"))
        batch_op.drop_index(batch_op.f("ix_snapshots_change_seq"))

    op.drop_table("snapshots")
    with op.batch_alter_table("overrides", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_overrides_target_type"))
        batch_op.drop_index(batch_op.f("ix_overrides_change_seq"))

    op.drop_table("overrides")
    with op.batch_alter_table("images", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_images_phash"))
        batch_op.drop_index(batch_op.f("ix_images_origin"))
        batch_op.drop_index(batch_op.f("ix_images_change_seq"))

    op.drop_table("images")
    op.drop_table("change_counter")
