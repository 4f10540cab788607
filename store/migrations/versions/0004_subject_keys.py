"""Subject keys: each data subject's own pseudonym key, deleted with the subject, so erasure makes their old
audit entries unlinkable to them. Every existing profile gets a key.

Revision ID: 0004
Revises: 0003
"""

import secrets

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    keys = op.create_table(
        "subject_keys",
        sa.Column("user_id", sa.String(128), sa.ForeignKey("profiles.user_id", ondelete="CASCADE"),
                  primary_key=True),
        sa.Column("secret", sa.String(64), nullable=False),
    )
    conn = op.get_bind()
    ids = [r[0] for r in conn.execute(sa.text("SELECT user_id FROM profiles"))]
    for i in range(0, len(ids), 5000):
        op.bulk_insert(keys, [{"user_id": u, "secret": secrets.token_hex(32)} for u in ids[i:i + 5000]])


def downgrade() -> None:
    op.drop_table("subject_keys")
