"""Subject keys: each data subject's own pseudonym key, deleted with the subject, so erasure makes their audit
entries unlinkable to them.

Every existing profile gets a key. Until now the audit named subjects with one server-wide key; each profile keeps
the name that key gave it (``legacy_pseudonym``), so its earlier entries stay findable, and the server-wide key is
then replaced: once a subject's row is gone, nobody can work their old name out again.

Revision ID: 0004
Revises: 0003
"""

import hashlib
import hmac
import secrets

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def _legacy(server_key: bytes, user_id: str) -> str:
    """How the server-wide key named a subject in the audit log before this revision."""
    return "s_" + hmac.new(server_key, f"subject\x1f{user_id}".encode(), hashlib.sha256).hexdigest()[:32]


def upgrade() -> None:
    keys = op.create_table(
        "subject_keys",
        sa.Column("user_id", sa.String(128), sa.ForeignKey("profiles.user_id", ondelete="CASCADE"),
                  primary_key=True),
        sa.Column("secret", sa.String(64), nullable=False),
        sa.Column("legacy_pseudonym", sa.String(64), nullable=True),
    )
    conn = op.get_bind()
    server = conn.execute(sa.text("SELECT secret FROM server_keys WHERE name = 'pseudonyms'")).first()
    server_key = bytes.fromhex(server[0]) if server is not None else None
    ids = [r[0] for r in conn.execute(sa.text("SELECT user_id FROM profiles"))]
    for i in range(0, len(ids), 5000):
        op.bulk_insert(keys, [{"user_id": u, "secret": secrets.token_hex(32),
                               "legacy_pseudonym": _legacy(server_key, u) if server_key else None}
                              for u in ids[i:i + 5000]])
    # A fresh server-wide key (made on first use) names only ids without a profile from now on.
    conn.execute(sa.text("DELETE FROM server_keys WHERE name = 'pseudonyms'"))


def downgrade() -> None:
    op.drop_table("subject_keys")
