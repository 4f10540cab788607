"""Published reference data: the field catalog and the purposes policy."""

from __future__ import annotations

from ..domain import categories as cat
from ..domain.fields import FIELDS
from ..domain.purposes import PURPOSES
from .views import FieldCatalogView, FieldView, PurposesView, PurposeView


def field_catalog() -> FieldCatalogView:
    return FieldCatalogView(
        fields=[FieldView(name=f.name, section=f.section, category=f.category, kind=f.kind,
                          description=f.description, choices=list(f.choices),
                          direct_identifier=f.direct_identifier) for f in FIELDS],
        categories=list(cat.TOP_LEVEL),
    )


def purposes() -> PurposesView:
    return PurposesView(purposes=[
        PurposeView(name=p.name, basis=p.basis, description=p.description, uses=list(p.uses),
                    needs_identifiers=p.needs_identifiers, individual=p.individual)
        for p in PURPOSES.values()
    ])
