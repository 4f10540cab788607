"""Published reference data: the field catalog with what each field and event is collected for, and the purposes
policy. Both are read from the tables the server enforces."""

from __future__ import annotations

from ..domain import categories as cat
from ..domain.events import EVENT_TYPES
from ..domain.fields import FIELDS, INFERENCE
from ..domain.purposes import PURPOSES, Collection
from ..learning.preferences import LEARNED_EVENTS, LEARNING
from .views import (
    EXPORT_FORMAT,
    EXPORT_VERSION,
    CollectionView,
    EventTypeView,
    ExportSchemaView,
    ExportView,
    FieldCatalogView,
    FieldView,
    PurposesView,
    PurposeView,
)


def _collection(c: Collection) -> CollectionView:
    return CollectionView(purposes=list(c.purposes), basis=c.basis)


def field_catalog() -> FieldCatalogView:
    return FieldCatalogView(
        fields=[FieldView(name=f.name, section=f.section, category=f.category, kind=f.kind,
                          description=f.description, choices=list(f.choices), direct_identifier=f.direct_identifier,
                          collected=_collection(f.collected) if f.collected else None) for f in FIELDS],
        events=[EventTypeView(name=e.name, description=e.description, category=e.category,
                              collected=_collection(e.collected),
                              learned=_collection(LEARNING) if e.name in LEARNED_EVENTS else None)
                for e in EVENT_TYPES.values()],
        inferred=_collection(INFERENCE),
        categories=list(cat.TOP_LEVEL),
    )


def purposes() -> PurposesView:
    return PurposesView(purposes=[
        PurposeView(name=p.name, basis=p.basis, description=p.description, uses=list(p.uses),
                    needs_identifiers=p.needs_identifiers, individual=p.individual)
        for p in PURPOSES.values()
    ])


def export_schema() -> ExportSchemaView:
    """Generated from the result model itself, so the published schema is the one the export is validated by."""
    schema = ExportView.model_json_schema(mode="serialization")
    schema["$id"] = f"schema://export/v{EXPORT_VERSION}"
    schema["title"] = f"{EXPORT_FORMAT} version {EXPORT_VERSION}"
    return ExportSchemaView(json_schema=schema)
