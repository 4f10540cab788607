"""People the feature tests start from, made through the MCP surface as any caller would make them."""

from __future__ import annotations

from ..conftest import World
from .clients import call


async def seed_user(world: World, user_id: str = "u1", consent: tuple[str, ...] = ()) -> None:
    """A profile with a name, contact, language and delivery city (the contract's), grants of ``consent``, and
    with personalization among them a like and a country (collected for personalization)."""
    async with world.client("privacy-officer") as c:
        await call(c, "update_profile", user_id=user_id, create=True, attributes={
            "display_name": "Ana", "email": "ana@example.org", "language": "en-GB", "city": "Lisbon"})
        for purpose in consent:
            await call(c, "record_consent", user_id=user_id, purpose=purpose, granted=True, source="test",
                       evidence="said yes in chat")
        if "personalization" in consent:
            await call(c, "update_profile", user_id=user_id, attributes={"likes": ["lavender"], "country": "PT"})
