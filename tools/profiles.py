"""Profile tools."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import Field

from ..domain.limits import MAX_ATTRIBUTES, MAX_SOURCE
from ..privacy.subjects import UserId
from ..privacy.surface import tool
from ..usecases.app import Scope
from ..usecases.views import ProfileUpdate, ProfileView, Section
from .arguments import Purpose


@tool(title="Get profile")
async def get_profile(
    scope: Scope,
    user_id: UserId,
    purpose: Purpose,
    sections: Annotated[list[Section] | None, Field(description="Sections to return; all by default.")] = None,
) -> ProfileView:
    """The user's profile as this caller may see it for this purpose; withheld fields are listed with reasons."""
    return await scope.app.profiles.view(scope.access, user_id, sections)


@tool(title="Update profile", role="writer", purpose="service", read_only=False, idempotent=True)
async def update_profile(
    scope: Scope,
    user_id: UserId,
    attributes: Annotated[dict[str, Any], Field(
        description="Field name to value, e.g. {\"likes\": [\"lavender\"], \"language\": \"en-GB\"}; "
                    f"fields and types in schema://profile. At most {MAX_ATTRIBUTES}.")],
    source: Annotated[str, Field(max_length=MAX_SOURCE, description="explicit (the user said it), "
                                 "external:<system> or inferred:<model>.")] = "explicit",
    confidence: Annotated[float | None, Field(ge=0, le=1, description="0 to 1; 1.0 for explicit input "
                                              "by default.")] = None,
    create: Annotated[bool, Field(description="Create the profile if it does not exist.")] = False,
) -> ProfileUpdate:
    """Write profile attributes with their provenance; explicit input outranks inferred data. Each attribute is
    collected for a purpose (schema://profile): this caller must act for it and see its category, and the user
    consent to it (identity, language, communication and delivery address rest on the contract); an inferred:<model>
    source needs profiling too. Otherwise nothing is written and the error names the consent to ask for."""
    return await scope.app.profiles.update(scope.access, user_id, attributes, source, confidence, create)
