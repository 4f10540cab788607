"""Everything the server exposes, in one list: a tool, resource or prompt that is not listed here is not served.

Handlers are declared beside what they translate (``@tool`` in ``tools/``, ``@resource`` and ``@prompt`` in
``resources/``) and served only through the consent gate; a test fails when a declared handler is missing here.
"""

from __future__ import annotations

from ..privacy.surface import Handler
from ..resources import profile, prompts, reference
from ..tools import consent, events, learning, profiles, requests, rights

CATALOG: tuple[Handler, ...] = (
    # tools
    profiles.get_profile,
    profiles.update_profile,
    events.record_event,
    events.record_events,
    consent.check_consent,
    consent.record_consent,
    consent.record_privacy_signal,
    consent.restrict_processing,
    consent.object_to_profiling,
    learning.get_preferences,
    learning.find_similar_users,
    learning.recommend,
    requests.submit_request,
    requests.update_request,
    requests.get_request,
    requests.list_requests,
    rights.export_user_data,
    rights.erase_user,
    # resources
    profile.profile,
    profile.consent,
    reference.profile_schema,
    reference.purposes_policy,
    reference.export_schema,
    # prompts
    prompts.personalize,
    prompts.privacy_summary,
)
