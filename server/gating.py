"""The consent gate on the MCP surface: one wrapper per declared handler, one middleware for every call.

Every declared tool, resource and prompt is registered only through ``GatedSurface.wrap``: it resolves the caller,
opens the gate, runs the handler, releases the result field by field and appends the audit entry. The middleware
is the last line: a tool call, resource read, prompt or completion that did not pass through a wrapper (a handler
registered around the gate, or a call rejected before it) is audited, and a result it would have returned is
refused. The audit names only what the server declares: an unknown tool is ``tool:?``, a resource read by its
declared template (``resource:profile://{user_id}``), never the URI with the id in it.
"""

from __future__ import annotations

import inspect
import json
import logging
from collections.abc import Callable, Mapping, Sequence
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any, Literal

from mcp.server.auth.middleware.auth_context import get_access_token
from mcp.server.mcpserver.exceptions import ToolError
from mcp.shared.exceptions import MCPError
from mcp.shared.uri_template import UriTemplate
from mcp.types import INTERNAL_ERROR, INVALID_PARAMS, CallToolResult, TextContent

from ..domain.audit import Withholding
from ..domain.callers import Caller
from ..domain.errors import DomainError, NotPermitted, StoreUnavailable
from ..domain.purposes import PURPOSES
from ..privacy.gate import Access
from ..privacy.surface import Handler
from ..usecases.app import Scope
from .runtime import Runtime

log = logging.getLogger("mnky_profiles.gate")

GATED_METHODS = {"tools/call": "tool", "resources/read": "resource", "prompts/get": "prompt",
                 "completion/complete": "completion"}
COMPLETED = ("purpose", "user_id")  # the arguments the server completes
CallerSource = Literal["local", "token"]


@dataclass
class _Call:
    method: str
    audited: bool = False


_current: ContextVar[_Call | None] = ContextVar("mnky_call", default=None)


class GatedSurface:
    def __init__(self, runtime: Runtime, caller_from: CallerSource, local_caller: str | None = None,
                 handlers: Sequence[Handler] = ()) -> None:
        self.runtime = runtime
        self.caller_from = caller_from
        self.local_caller = local_caller or runtime.settings.local_caller
        self.handlers: dict[tuple[str, str], Handler] = {(h.kind, h.name): h for h in handlers}
        # Resource templates, matched as the SDK matches them, after the fixed URIs (as the SDK does too).
        self.templates = [(h, UriTemplate.parse(h.name)) for h in handlers if h.kind == "resource" and "{" in h.name]

    def declared(self, kind: str, params: Any) -> tuple[Handler | None, dict[str, Any]]:
        """The declared handler a request names (None: it names none) and its arguments as sent; for a resource
        template, the parameters its URI holds."""
        params = params if isinstance(params, Mapping) else {}
        if kind == "resource":
            uri = params.get("uri")
            if not isinstance(uri, str):
                return None, {}
            if ("resource", uri) in self.handlers:
                return self.handlers["resource", uri], {}
            for handler, template in self.templates:
                if (found := template.match(uri)) is not None:
                    return handler, dict(found)
            return None, {}
        name, arguments = params.get("name"), params.get("arguments")
        named = self.handlers.get((kind, name)) if isinstance(name, str) else None
        return named, dict(arguments) if isinstance(arguments, Mapping) else {}

    # -- who is calling --------------------------------------------------------------------------------------
    def caller(self) -> Caller:
        """The caller comes from the bearer token over HTTP, from settings otherwise; never from arguments."""
        if self.caller_from == "token":
            token = get_access_token()
            caller = self.runtime.callers.get(token.client_id) if token is not None else None
            if caller is None:
                raise NotPermitted("The request carries no valid bearer token.")
            return caller
        name = self.local_caller
        if name is None:
            raise NotPermitted("No local caller is configured for this transport.",
                               "Set local_caller in the settings, or use HTTP with a bearer token.")
        return self.runtime.callers[name]

    # -- audit -----------------------------------------------------------------------------------------------
    async def audit(self, caller: str, action: str, handler: Handler | None, arguments: dict[str, Any],
                    access: Access | None, outcome: str, released: Sequence[str] = (),
                    withheld: Sequence[Withholding] = ()) -> None:
        call = _current.get()
        if call is not None:
            call.audited = True
        # The subjects the gate found; for a call refused before the gate, the ones its arguments hold; for a name
        # that no declaration types (an unknown or ungated tool), its ``user_id`` argument, the only clue there is.
        if access is not None:
            subjects = list(access.subjects) or list(dict.fromkeys(access.reached))
        elif handler is not None:
            subjects = handler.subjects(arguments)
        else:
            subjects = [arguments["user_id"]] if isinstance(arguments.get("user_id"), str) else []
        await self.runtime.audit.record(
            caller=caller, action=action, subject=subjects[0] if len(subjects) == 1 else None,
            purpose=access.purpose.name if access is not None else _purpose_arg(arguments),
            outcome=outcome, released=released, withheld=withheld)

    # -- the wrapper -----------------------------------------------------------------------------------------
    def wrap(self, handler: Handler) -> Callable[..., Any]:
        runtime = self.runtime

        async def gated(**arguments: Any) -> Any:
            caller_name = "unknown"
            access: Access | None = None
            try:
                caller = self.caller()
                caller_name = caller.name
                access = await runtime.gate.open(caller, handler, arguments)
                result = await handler.fn(Scope(runtime.usecases, access), **arguments)
                release = runtime.gate.release(access, result)
            except DomainError as exc:
                await self.audit(caller_name, handler.action, handler, arguments, access, f"error:{exc.code}")
                raise _error(handler, str(exc)) from None
            except StoreUnavailable as exc:
                log.error("backend failure in %s: %s", handler.action, exc)
                await _audit_quietly(self, caller_name, handler.action, handler, arguments, access, "error:storage")
                raise _error(handler, "The profile store or an index it needs is unavailable right now; retry shortly.",
                             INTERNAL_ERROR) from None
            except Exception:
                await _audit_quietly(self, caller_name, handler.action, handler, arguments, access, "error:internal")
                raise
            await self.audit(caller_name, handler.action, handler, arguments, access, "ok", release.released,
                             release.withheld)
            out = release.result
            if handler.kind == "resource":
                return out.model_dump_json(exclude_none=True)
            if handler.kind == "prompt":
                assert handler.render is not None
                return handler.render(out)
            # Fields that hold nothing (withheld, or absent) are left out of the wire form: shorter for the model
            # to read and cheaper for clients to check against the output schema, where every such field is
            # optional. The SDK still validates the structured content against the output model.
            structured = out.model_dump(mode="json", exclude_none=True)
            text = json.dumps(structured, ensure_ascii=False, separators=(",", ":"))
            return CallToolResult(content=[TextContent(type="text", text=text)], structured_content=structured)

        public = inspect.signature(handler.fn, eval_str=True)
        params = list(public.parameters.values())[1:]  # drop ``scope``: the gate supplies it
        returns = public.return_annotation if handler.kind == "tool" else str
        gated.__signature__ = public.replace(parameters=params, return_annotation=returns)  # type: ignore[attr-defined]
        gated.__name__ = handler.fn.__name__
        gated.__qualname__ = handler.fn.__qualname__
        gated.__module__ = handler.fn.__module__
        gated.__doc__ = handler.description
        gated.__annotations__ = {p.name: p.annotation for p in params} | {"return": returns}
        return gated

    # -- the last line ---------------------------------------------------------------------------------------
    async def middleware(self, ctx: Any, call_next: Callable[[Any], Any]) -> Any:
        kind = GATED_METHODS.get(ctx.method)
        if kind is None:
            return await call_next(ctx)
        call = _Call(ctx.method)
        token = _current.set(call)
        try:
            result = await call_next(ctx)
        except Exception:
            if not call.audited:
                await self._audit_rejected(ctx, kind, "error:rejected")
            raise
        finally:
            _current.reset(token)
        if call.audited:
            return result
        if _is_error(result):
            await self._audit_rejected(ctx, kind, "error:rejected")
            return result
        # A success that no gated handler produced: refuse it rather than let it leave.
        log.error("refused an ungated result for %s %s", ctx.method, _target(ctx))
        await self._audit_rejected(ctx, kind, "error:ungated")
        message = "This result did not pass the consent gate and was not released."
        if kind == "tool":
            return CallToolResult(content=[TextContent(type="text", text=message)], is_error=True)
        raise MCPError(INTERNAL_ERROR, message)

    async def _audit_rejected(self, ctx: Any, kind: str, outcome: str) -> None:
        try:
            caller = self.caller().name
        except NotPermitted:
            caller = "unknown"
        if kind == "completion":
            argument = ctx.params.get("argument") if isinstance(ctx.params, Mapping) else None
            name = argument.get("name") if isinstance(argument, Mapping) else None
            await _audit_quietly(self, caller, completion_action(name), None, {}, None, outcome)
            return
        handler, arguments = self.declared(kind, ctx.params)
        await _audit_quietly(self, caller, handler.action if handler else f"{kind}:?", handler, arguments, None,
                             outcome)


def completion_action(argument: Any) -> str:
    """How the audit names a completion: by the argument completed, when it is one the server completes."""
    return f"completion:{argument if argument in COMPLETED else '?'}"


def _purpose_arg(arguments: dict[str, Any]) -> str | None:
    purpose = arguments.get("purpose")
    return purpose if isinstance(purpose, str) and purpose in PURPOSES else None  # never echo caller text


def _target(ctx: Any) -> str:
    """For the server's own log: what an ungated request names (a name registered on this server)."""
    params = ctx.params if isinstance(ctx.params, Mapping) else {}
    target = params.get("name") or params.get("uri") or "?"
    return ascii(target)[:200]


def _is_error(result: Any) -> bool:
    if isinstance(result, dict):
        return bool(result.get("isError") or result.get("is_error"))
    return bool(getattr(result, "is_error", False))


def _error(handler: Handler, message: str, code: int = INVALID_PARAMS) -> Exception:
    if handler.kind == "tool":
        return ToolError(message)
    return MCPError(code, message)


async def _audit_quietly(surface: GatedSurface, caller: str, action: str, handler: Handler | None,
                         arguments: dict[str, Any], access: Access | None, outcome: str) -> None:
    try:
        await surface.audit(caller, action, handler, arguments, access, outcome)
    except Exception:  # the original failure matters more than a failed audit of it
        log.exception("could not audit %s", action)
