"""data engine: ingest failures, extractions, image format

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-26 10:05:48.952360
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "extractions",
        sa.Column("image_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("producer", sa.String(length=200), nullable=False),
        sa.Column(
            "objects",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column(
            "created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
        sa.Column("change_seq", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(
            ["image_id"],
            ["images.id"],
            name=op.f("fk_extractions_image_id_images"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("image_id", "producer", name=op.f("pk_extractions")),
    )
    with op.batch_alter_table("extractions", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_extractions_change_seq"), ["change_seq"], unique=False)

    op.create_table(
        "ingest_failures",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column(
            "source_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False
        ),
        sa.Column("source_key", sa.String(length=500), nullable=False),
        sa.Column("reason", sa.String(length=64), nullable=False),
        sa.Column("detail", sa.Text(), nullable=False),
        sa.Column(
            "created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
        sa.ForeignKeyConstraint(
            ["source_id"],
            ["sources.id"],
            name=op.f("fk_ingest_failures_source_id_sources"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_ingest_failures")),
        sa.UniqueConstraint(
            "source_id", "source_key", name=op.f("uq_ingest_failures_source_id_source_key")
        ),
    )
    with op.batch_alter_table("ingest_failures", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_ingest_failures_reason"), ["reason"], unique=False)

    with op.batch_alter_table("image_stages", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column(
                "details",
                sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
                nullable=False,
                server_default="{}",
            )
        )

    with op.batch_alter_table("images", schema=None) as batch_op:
        batch_op.add_column(sa.Column("format", sa.String(length=16), nullable=True))
        batch_op.add_column(sa.Column("byte_size", sa.BigInteger(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("image_stages", schema=None) as batch_op:
        batch_op.drop_column("details")

    with op.batch_alter_table("images", schema=None) as batch_op:
        batch_op.drop_column("byte_size")
        batch_op.drop_column("format")

    with op.batch_alter_table("ingest_failures", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_ingest_failures_reason"))

    op.drop_table("ingest_failures")
    with op.batch_alter_table("extractions", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_extractions_change_seq"))

    op.drop_table("extractions")
