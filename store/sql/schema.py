"""Table definitions. Migrations in ``store/migrations`` create them; a test checks the two agree."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql

metadata = sa.MetaData(naming_convention={
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "pk": "pk_%(table_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
})


class UTCDateTime(sa.TypeDecorator[datetime]):
    """Aware UTC datetimes on both databases (SQLite keeps no zone; values are stored as UTC)."""

    impl = sa.DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: sa.Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime reached the database")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: sa.Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


JSON: Any = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")
BigId: Any = sa.BigInteger().with_variant(sa.Integer(), "sqlite")  # SQLite autoincrements INTEGER keys only

profiles = sa.Table(
    "profiles", metadata,
    sa.Column("user_id", sa.String(128), primary_key=True),
    sa.Column("created_at", UTCDateTime(), nullable=False),
    sa.Column("updated_at", UTCDateTime(), nullable=False),
)

attributes = sa.Table(
    "attributes", metadata,
    sa.Column("user_id", sa.String(128), sa.ForeignKey("profiles.user_id", ondelete="CASCADE"), primary_key=True),
    sa.Column("field", sa.String(64), primary_key=True),
    sa.Column("source", sa.String(64), primary_key=True),
    sa.Column("value", JSON, nullable=False),
    sa.Column("confidence", sa.Float(), nullable=False),
    sa.Column("observed_at", UTCDateTime(), nullable=False),
)

events = sa.Table(
    "events", metadata,
    sa.Column("id", BigId, primary_key=True, autoincrement=True),
    sa.Column("user_id", sa.String(128), sa.ForeignKey("profiles.user_id", ondelete="CASCADE"), nullable=False),
    sa.Column("event_type", sa.String(32), nullable=False),
    sa.Column("item_id", sa.String(128), nullable=True),
    sa.Column("properties", JSON, nullable=False),
    sa.Column("occurred_at", UTCDateTime(), nullable=False),
    sa.Column("recorded_at", UTCDateTime(), nullable=False),
    sa.Index(None, "user_id", "occurred_at"),
    sa.Index(None, "occurred_at"),
)

consents = sa.Table(
    "consents", metadata,
    sa.Column("id", BigId, primary_key=True, autoincrement=True),
    sa.Column("user_id", sa.String(128), sa.ForeignKey("profiles.user_id", ondelete="CASCADE"), nullable=False),
    sa.Column("purpose", sa.String(32), nullable=False),
    sa.Column("state", sa.String(16), nullable=False),
    sa.Column("source", sa.String(64), nullable=False),
    sa.Column("evidence", sa.Text(), nullable=True),
    sa.Column("recorded_at", UTCDateTime(), nullable=False),
    sa.Column("expires_at", UTCDateTime(), nullable=True),
    sa.Index(None, "user_id", "id"),
)

items = sa.Table(
    "items", metadata,
    sa.Column("item_id", sa.String(128), primary_key=True),
    sa.Column("kind", sa.String(16), nullable=False),
    sa.Column("title", sa.String(256), nullable=False),
    sa.Column("attributes", JSON, nullable=False),
)

audit_log = sa.Table(
    "audit_log", metadata,
    sa.Column("seq", BigId, primary_key=True, autoincrement=False),
    sa.Column("at", UTCDateTime(), nullable=False),
    sa.Column("caller", sa.String(128), nullable=False),
    sa.Column("action", sa.String(256), nullable=False),
    sa.Column("subject", sa.String(64), nullable=True),
    sa.Column("purpose", sa.String(32), nullable=True),
    sa.Column("released", JSON, nullable=False),
    sa.Column("withheld", JSON, nullable=False),
    sa.Column("outcome", sa.String(64), nullable=False),
    sa.Column("prev_hash", sa.String(64), nullable=False),
    sa.Column("hash", sa.String(64), nullable=False),
    # The fingerprint of the audit key the hash is an HMAC under (the key itself is never here); NULL for
    # entries from before the audit key (revision 0005), whose hash is plain SHA-256.
    sa.Column("key_id", sa.String(16), nullable=True),
    sa.Index(None, "subject"),
)

# The newest entry's place and hash, written with it: removing entries from the end breaks the match.
audit_head = sa.Table(
    "audit_head", metadata,
    sa.Column("id", sa.Integer(), primary_key=True, autoincrement=False),
    sa.Column("seq", BigId, nullable=False),
    sa.Column("hash", sa.String(64), nullable=False),
)

server_keys = sa.Table(
    "server_keys", metadata,
    sa.Column("name", sa.String(64), primary_key=True),
    sa.Column("secret", sa.String(128), nullable=False),
)

# Each data subject's own pseudonym key (hex), made with the profile and deleted with it: once it is gone, no one
# can tell which audit entries were about the person. ``legacy_pseudonym``: the name the audit gave a profile made
# before subject keys existed (revision 0004), so its earlier entries stay findable until the row goes.
subject_keys = sa.Table(
    "subject_keys", metadata,
    sa.Column("user_id", sa.String(128), sa.ForeignKey("profiles.user_id", ondelete="CASCADE"), primary_key=True),
    sa.Column("secret", sa.String(64), nullable=False),
    sa.Column("legacy_pseudonym", sa.String(64), nullable=True),
)

# Data subject requests (``domain/requests.py``). ``user_id`` has no foreign key: when the subject is erased the
# row stays, with ``user_id`` and ``details`` cleared (``store/sql/personal.py``), as the record of the request and
# its receipt; ``subject`` is the audit's pseudonym for them, unlinkable once their key is gone.
requests = sa.Table(
    "requests", metadata,
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
    sa.Index(None, "user_id"),
    sa.Index(None, "status", "due_at"),
)

# -- learning ------------------------------------------------------------------------------------------------

# Preference weights per attribute token (and per item, as ``item:<id>``), explicit and implicit apart.
preferences = sa.Table(
    "preferences", metadata,
    sa.Column("user_id", sa.String(128), sa.ForeignKey("profiles.user_id", ondelete="CASCADE"), primary_key=True),
    sa.Column("token", sa.String(200), primary_key=True),
    sa.Column("source", sa.String(16), primary_key=True),
    sa.Column("weight", sa.Float(), nullable=False),
    sa.Column("ref_at", UTCDateTime(), nullable=False),
    sa.Column("evidence_count", sa.Integer(), nullable=False),
    sa.Column("evidence", JSON, nullable=False),
    sa.Column("updated_at", UTCDateTime(), nullable=False),
)

# The user's dense vector as of the newest weight it was computed from.
user_vectors = sa.Table(
    "user_vectors", metadata,
    sa.Column("user_id", sa.String(128), sa.ForeignKey("profiles.user_id", ondelete="CASCADE"), primary_key=True),
    sa.Column("model", sa.String(80), nullable=False),
    sa.Column("vector", sa.LargeBinary(), nullable=False),
    sa.Column("as_of", UTCDateTime(), nullable=False),
)

# Events recorded while update_frequency is batch, waiting for the next learning run.
pending_events = sa.Table(
    "pending_events", metadata,
    sa.Column("event_id", BigId, sa.ForeignKey("events.id", ondelete="CASCADE"), primary_key=True,
              autoincrement=False),
)

# Embeddings already received from a paid or remote model, so a text is requested once per model. The text itself
# is not kept: its SHA-256 is enough to find it again. Vectors are float32, little-endian.
embedding_cache = sa.Table(
    "embedding_cache", metadata,
    sa.Column("model", sa.String(128), primary_key=True),
    sa.Column("text_sha256", sa.String(64), primary_key=True),
    sa.Column("dim", sa.Integer(), nullable=False),
    sa.Column("vector", sa.LargeBinary(), nullable=False),
)
