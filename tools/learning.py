"""Tools over what was learned: preferences, similar users, recommendations."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field

from ..privacy.subjects import UserId
from ..privacy.surface import tool
from ..usecases.app import Scope
from ..usecases.views import PreferencesView, RecommendationsView, SimilarUsersView
from .arguments import Limit, Purpose


@tool(title="Get preferences")
async def get_preferences(scope: Scope, user_id: UserId, purpose: Purpose, limit: Limit = 20) -> PreferencesView:
    """Learned and stated preferences with weight, confidence, source, evidence and last update."""
    return await scope.app.discovery.preferences(scope.access, user_id, limit)


@tool(title="Find similar users")
async def find_similar_users(
    scope: Scope,
    user_id: UserId,
    purpose: Purpose,
    limit: Limit = 10,
    min_similarity: Annotated[float, Field(ge=-1, le=1, description="Leave out neighbours whose cosine "
                                           "similarity, rounded to 0.05 as shown, is below this.")] = 0.3,
) -> SimilarUsersView:
    """Users with similar preferences and what they share, each under a name made fresh for this response; only
    users who consent to profiling."""
    return await scope.app.discovery.similar(scope.access, user_id, limit, min_similarity)


@tool(title="Recommend")
async def recommend(
    scope: Scope,
    user_id: UserId,
    purpose: Purpose,
    limit: Limit = 10,
    kind: Annotated[Literal["product", "content"] | None, Field(description="Only products or only "
                                                                   "content; both by default.")] = None,
    repurchase: Annotated[bool, Field(description="Include items the user bought before (replenishment).")] = False,
) -> RecommendationsView:
    """Products or content for the user with scores and reasons; a new user gets a labelled popularity fallback."""
    return await scope.app.discovery.recommend(scope.access, user_id, limit, kind, repurchase)
