"""The MCP server: declared handlers registered through the gate, completions, and the health route."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from mcp.server.auth.settings import AuthSettings
from mcp.server.mcpserver import MCPServer
from mcp.types import Completion, PromptReference, ResourceTemplateReference, ToolAnnotations
from starlette.requests import Request
from starlette.responses import JSONResponse

from .. import __version__
from ..domain.errors import DomainError, NotPermitted
from ..domain.purposes import PURPOSE_NAMES
from ..privacy.subjects import is_user_id
from ..privacy.surface import Handler
from ..usecases.directory import completable_user_ids
from .auth import SCOPE, HashedTokenVerifier
from .catalog import CATALOG
from .gating import CallerSource, GatedSurface, completion_action
from .runtime import Runtime

INSTRUCTIONS = """\
mnky-profiles is the user-profiling layer of the brand's agents. Read a user's profile, preferences and consent,
and record what the user says and does. Every call names a purpose (see policy://purposes); results leave through
a consent gate that withholds what you may not see, what the purpose may not use, or what the user has not agreed
to, and lists each withheld field with the reason. When consent is missing, ask the user and record their answer
with record_consent; never guess withheld data. Field meanings are in schema://profile."""

MAX_COMPLETIONS = 20


def build_server(runtime: Runtime, *, caller_from: CallerSource = "local", local_caller: str | None = None,
                 base_url: str | None = None, handlers: Sequence[Handler] = CATALOG) -> MCPServer[Any]:
    """The MCP server over an already bootstrapped runtime, serving ``handlers`` (the catalog), each gated.

    ``caller_from="token"`` takes the caller from bearer tokens (streamable HTTP); ``"local"`` acts as
    ``local_caller`` (default: the settings' ``local_caller``).
    """
    if local_caller is not None and local_caller not in runtime.callers:
        raise ValueError(f"unknown caller {local_caller!r}")
    twice = sorted({h.action for h in handlers if sum(g.action == h.action for g in handlers) > 1})
    if twice:
        raise ValueError(f"declared twice: {', '.join(twice)}")
    surface = GatedSurface(runtime, caller_from, local_caller, handlers)
    auth: dict[str, Any] = {}
    if caller_from == "token":
        base = base_url or "http://127.0.0.1:8765"
        auth = {"token_verifier": HashedTokenVerifier(runtime.settings),
                # The verifier is the audience check: a token is valid here only if its digest is configured here.
                "auth": AuthSettings(issuer_url=base, resource_server_url=f"{base}/mcp", required_scopes=[SCOPE],
                                     validate_token_resource=False)}
    server: MCPServer[Any] = MCPServer(
        "mnky-profiles", title="mnky-profiles", version=__version__, instructions=INSTRUCTIONS,
        middleware=[surface.middleware], **auth,
    )
    for handler in handlers:
        fn = surface.wrap(handler)
        if handler.kind == "tool":
            server.add_tool(fn, name=handler.name, title=handler.title, description=handler.description,
                            structured_output=True, annotations=ToolAnnotations(
                                title=handler.title, read_only_hint=handler.read_only,
                                destructive_hint=handler.destructive, idempotent_hint=handler.idempotent,
                                open_world_hint=False))
        elif handler.kind == "resource":
            server.resource(handler.name, name=handler.fn.__name__, title=handler.title,
                            description=handler.description, mime_type="application/json")(fn)
        else:
            server.prompt(name=handler.name, title=handler.title, description=handler.description)(fn)

    async def complete(ref: Any, argument: Any, context: Any) -> Completion | None:
        result: Completion | None = None
        # Every completion appends one entry, refused ones too; only the user ids one offers are personal data.
        action = completion_action(argument.name)
        try:
            caller = surface.caller()
        except NotPermitted:
            await surface.audit("unknown", action, None, {}, None, "error:not_permitted")
            return Completion(values=[])
        prefix = argument.value or ""
        outcome, values = "ok", []
        if not isinstance(ref, PromptReference | ResourceTemplateReference):
            pass
        elif argument.name == "purpose":
            values = [p for p in PURPOSE_NAMES if p in caller.purposes and p.startswith(prefix)]
            result = Completion(values=values, total=len(values), has_more=False)
        elif argument.name == "user_id":
            # Only users the caller could read, a bounded page of them; the audit never holds what was typed.
            more = False
            if not prefix or is_user_id(prefix):  # no user id starts with anything else: nothing to look up
                try:
                    values, more = await completable_user_ids(runtime.store, caller, prefix, runtime.clock.now(),
                                                              MAX_COMPLETIONS)
                except DomainError as exc:
                    outcome = f"error:{exc.code}"
            result = Completion(values=values, has_more=more)
        released = ("user_id[]",) if argument.name == "user_id" and values else ()
        await surface.audit(caller.name, action, None, {}, None, outcome, released)
        return result

    async def health(request: Request) -> JSONResponse:
        storage = runtime.settings.user_profiling.storage
        return JSONResponse({"status": "ok", "version": __version__, "storage": storage})

    # The SDK's decorators carry no types; registered by call, both functions keep theirs.
    server.completion()(complete)  # type: ignore[no-untyped-call]
    server.custom_route("/health", methods=["GET"])(health)

    return server
