"""Data subject requests: what a person asked for, how they were verified, its status and legal due date, and (for
an erasure) the receipt of what was removed, kept without personal data.

``user_id`` has no foreign key to ``profiles``: the record of a request outlives the subject's erasure (with its
``user_id`` and ``details`` cleared), named only by the audit pseudonym in ``subject``.

Revision ID: 0006
Revises: 0005
"""

import sqlalchemy as sa
from alembic import op

from mnky_profiles.store.sql.schema import JSON, BigId, UTCDateTime

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

def upgrade() -> None:
    op.create_table(
        "requests",
        sa.Column("id", BigId, primary_key=True, autoincrement=True),
        sa.Column("user_id", sa.String(128), nullable=True),
        sa.Column("subject", sa.String(64), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("regime", sa.String(8), nullable=False),
        sa.Column("requested_by", sa.String(128), nullable=False),
        sa.Column("verification", sa.String(128), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("details", sa.Text(), nullable=True),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
        sa.Column("due_at", UTCDateTime(), nullable=False),
        sa.Column("receipt", JSON, nullable=True),
    )
    op.create_index("ix_requests_user_id", "requests", ["user_id"])
    op.create_index("ix_requests_status_due_at", "requests", ["status", "due_at"])


def downgrade() -> None:
    op.drop_index("ix_requests_status_due_at", table_name="requests")
    op.drop_index("ix_requests_user_id", table_name="requests")
    op.drop_table("requests")
