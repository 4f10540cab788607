"""Reference resources: no personal data, still served through the gate and audited."""

from __future__ import annotations

from ..privacy.surface import resource
from ..usecases import reference
from ..usecases.app import Scope
from ..usecases.views import ExportSchemaView, FieldCatalogView, PurposesView


@resource("schema://profile", title="Profile field catalog", purpose="service")
async def profile_schema(scope: Scope) -> FieldCatalogView:
    """Every profile field with its section, data category and value type."""
    return reference.field_catalog()


@resource("policy://purposes", title="Purposes policy", purpose="service")
async def purposes_policy(scope: Scope) -> PurposesView:
    """The purposes, their legal bases and the data categories each may use."""
    return reference.purposes()


@resource("schema://export", title="Export format", purpose="service")
async def export_schema(scope: Scope) -> ExportSchemaView:
    """The JSON Schema of export_user_data's result: one versioned document of everything held about a user."""
    return reference.export_schema()
