"""Learning: preference weights, user vectors, the batch-learning queue.

Revision ID: 0003
Revises: 0002
"""

import sqlalchemy as sa
from alembic import op

from mnky_profiles.store.sql.schema import JSON, BigId, UTCDateTime

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "preferences",
        sa.Column("user_id", sa.String(128), sa.ForeignKey("profiles.user_id", ondelete="CASCADE"),
                  primary_key=True),
        sa.Column("token", sa.String(200), primary_key=True),
        sa.Column("source", sa.String(16), primary_key=True),
        sa.Column("weight", sa.Float(), nullable=False),
        sa.Column("ref_at", UTCDateTime(), nullable=False),
        sa.Column("evidence_count", sa.Integer(), nullable=False),
        sa.Column("evidence", JSON, nullable=False),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
    )
    op.create_table(
        "user_vectors",
        sa.Column("user_id", sa.String(128), sa.ForeignKey("profiles.user_id", ondelete="CASCADE"),
                  primary_key=True),
        sa.Column("model", sa.String(80), nullable=False),
        sa.Column("vector", sa.LargeBinary(), nullable=False),
        sa.Column("as_of", UTCDateTime(), nullable=False),
    )
    op.create_table(
        "pending_events",
        sa.Column("event_id", BigId, sa.ForeignKey("events.id", ondelete="CASCADE"), primary_key=True,
                  autoincrement=False),
    )


def downgrade() -> None:
    for table in ("pending_events", "user_vectors", "preferences"):
        op.drop_table(table)
