"""People the feature tests start from, made through the MCP surface as any caller would make them."""

from __future__ import annotations

from ..conftest import World
from .clients import call


async def seed_user(world: World, user_id: str = "u1", consent: tuple[str, ...] = ()) -> None:
    """A profile with a name, contact, language, a like and a location, and grants of ``consent``."""
    async with world.client("privacy-officer") as c:
        await call(c, "update_profile", user_id=user_id, create=True, attributes={
            "display_name": "Ana", "email": "ana@example.org", "language": "en-GB", "likes": ["lavender"],
            "city": "Lisbon", "country": "PT"})
        for purpose in consent:
            await call(c, "record_consent", user_id=user_id, purpose=purpose, granted=True, source="test",
                       evidence="said yes in chat")
