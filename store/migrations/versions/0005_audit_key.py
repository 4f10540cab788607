"""Audit key: each audit entry names the key its hash is an HMAC under, by a fingerprint (never the key).

Entries written before this revision keep their plain SHA-256 hashes and no key id (NULL); they stay verifiable
as they are. From now on every entry is keyed with the audit key, which lives outside the database (the
``audit.key`` setting, or ``<data_dir>/audit.key``), and the server seals the older entries with a keyed one at
start. After a downgrade the keyed entries remain, but code from before this revision cannot verify them.

Revision ID: 0005
Revises: 0004
"""

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("audit_log", sa.Column("key_id", sa.String(16), nullable=True))


def downgrade() -> None:
    # SQLite cannot drop a column in place: batch mode copies the table without it.
    with op.batch_alter_table("audit_log") as batch:
        batch.drop_column("key_id")
