"""Bounds on what one call may carry or ask for. Use cases enforce them; tool schemas advertise the same ones."""

from __future__ import annotations

MAX_RESULTS = 100  # items in one list result (preferences, neighbours, recommendations)
MAX_BATCH = 500  # events in one record_events call
MAX_ATTRIBUTES = 64  # attributes in one update_profile call
MAX_SOURCE = 64  # characters of a provenance or consent source
MAX_EVIDENCE = 2000  # characters of consent evidence
MAX_ID = 128  # characters of a user or item id
MAX_TIMESTAMP = 64  # characters of an ISO 8601 timestamp
MAX_VERIFICATION = 128  # characters saying how a data subject was verified
