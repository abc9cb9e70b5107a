"""review queue: indexes in ambiguity order

The queue's ``ORDER BY abs(margin), id LIMIT 1`` sorted every matching relation (8 s at 10 M
relations); with (|margin|, id) and (relation, |margin|, id) indexes the database reads in that
order and stops at the first free item. The plain indexes on ``relation`` (now a prefix of the
new one) and on the boolean ``strict`` go: they led SQLite's planner into the sort.

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-26 13:50:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index("ix_relations_ambiguity", "relations", [sa.text("abs(margin)"), "id"])
    op.create_index(
        "ix_relations_relation_ambiguity", "relations", ["relation", sa.text("abs(margin)"), "id"]
    )
    op.drop_index("ix_relations_relation", table_name="relations")
    op.drop_index("ix_relations_strict", table_name="relations")


def downgrade() -> None:
    op.create_index("ix_relations_strict", "relations", ["strict"])
    op.create_index("ix_relations_relation", "relations", ["relation"])
    op.drop_index("ix_relations_relation_ambiguity", table_name="relations")
    op.drop_index("ix_relations_ambiguity", table_name="relations")
