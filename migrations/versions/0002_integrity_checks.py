"""integrity checks: positive image sizes, ordered boxes

Adding a CHECK constraint rebuilds the table on SQLite (batch mode). ``images`` and ``objects``
are parents of cascading children, so this revision is also the regression guard for running
migrations with foreign keys off (see migrations/env.py and tests/integration/test_migrations.py).

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-26 10:20:00
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("images") as batch_op:
        batch_op.create_check_constraint(
            op.f("ck_images_positive_size"), "width > 0 AND height > 0"
        )
    with op.batch_alter_table("objects") as batch_op:
        batch_op.create_check_constraint(op.f("ck_objects_ordered_box"), "x0 < x1 AND y0 < y1")


def downgrade() -> None:
    with op.batch_alter_table("objects") as batch_op:
        batch_op.drop_constraint(op.f("ck_objects_ordered_box"), type_="check")
    with op.batch_alter_table("images") as batch_op:
        batch_op.drop_constraint(op.f("ck_images_positive_size"), type_="check")
