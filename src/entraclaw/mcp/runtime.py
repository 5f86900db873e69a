"""What every tool call goes through: the device's credential and Graph, the audit line, consent.

:class:`AgentRuntime` is built once per server. Loading the device config and opening the key
happen on a background thread as the server starts (so the first tool call finds a warm token),
and again on demand; a device that is not set up (no ``.env``, missing key) is kept as the
*startup error* and every tool that needs Graph answers with it: what is missing and the
``entraclaw`` command that fixes it, as an MCP tool error, never a crash of the server.

:meth:`AgentRuntime.call` wraps one tool call: it times it, turns any entraclaw error into the
MCP tool error (message + fix; the Graph error code and request id when there are), notes a
cancellation, and appends the audit line whatever happened.
"""

from __future__ import annotations

import threading
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any, TypeVar

import anyio
import anyio.to_thread

from entraclaw.errors import (
    AgentToolError,
    ConfigurationError,
    ConsentRequiredError,
    EntraclawError,
    GraphRequestError,
    HumanApprovalError,
)
from entraclaw.mcp.audit import AuditLog, reduce_arguments
from entraclaw.mcp.consent import ConsentPolicy, ConsentRequest, Outcome, Rule, load_policy
from entraclaw.mcp.graph import AgentGraph, Permission, consent_command

__all__ = ["DEFAULT_CALL_DEADLINE", "AgentRuntime", "ToolCall", "tool_error_text"]

T = TypeVar("T")
#: Seconds one tool call may spend on tokens, Graph and Retry-After waits (wait_for_reply adds its own wait).
DEFAULT_CALL_DEADLINE = 60.0


@dataclass
class ToolCall:
    tool: str
    arguments: dict[str, Any]
    started: float = field(default_factory=time.monotonic)
    request_ids: list[str] = field(default_factory=list)
    consent: dict[str, Any] | None = None
    status: str = "ok"
    error_code: str | None = None


def tool_error_text(exc: EntraclawError) -> str:
    """The text the MCP client shows: what failed, Graph's code and request id when there are, the fix."""
    extra = []
    code = getattr(exc, "code", None)
    status = getattr(exc, "http_status", None)
    request_id = getattr(exc, "request_id", None)
    if code or status:
        extra.append(f"Graph error: {code or '-'} (HTTP {status if status is not None else '-'})")
    if request_id:
        extra.append(f"request-id {request_id}")
    head = exc.message + (" [" + "; ".join(extra) + "]" if extra else "")
    return f"{head} Fix: {exc.remedy}" if exc.remedy else head


def _agent_remedy(exc: GraphRequestError, tool: str, permission: Permission | None) -> str:
    status = getattr(exc, "http_status", None)
    code = str(getattr(exc, "code", "") or "")
    if status == 403:
        need = permission.least if permission else "the permission on the API's page"
        return (
            f"Graph refused the Agent User. Consent {need} with `{consent_command([need])}` (admin sign-in options "
            "as for setup); for Teams tools the Agent User also needs a Teams licence in a real tenant."
        )
    if status == 401:
        return "The Agent User's token was refused; `entraclaw doctor` checks the key, the three hops and /me."
    if status == 404:
        return f"Graph does not know that object; check the id given to {tool} (list_chats / find_user show ids)."
    if status in (429, 503, 504) or code in ("TooManyRequests", "ServiceUnavailable"):
        after = getattr(exc, "retry_after", None)
        wait = f"{float(after):.0f} s" if isinstance(after, (int, float)) else "a minute"
        return f"Graph is throttling or unavailable; call {tool} again after {wait}."
    if status == 400:
        return f"Graph rejected the arguments of {tool}; correct them as the message says and call it again."
    if status is None:
        return exc.remedy or "Check the network path to Graph (ENTRACLAW_GRAPH_URL) and call the tool again."
    return f"Call {tool} again; if it keeps failing, `entraclaw doctor` checks the device and its tokens."


class AgentRuntime:
    """The server's state: config, credential, Graph, audit log, consent policy."""

    def __init__(
        self,
        *,
        loader: Callable[[], tuple[Any, Any, AgentGraph]] | None = None,
        audit: AuditLog | None = None,
        policy: ConsentPolicy | None = None,
    ) -> None:
        self._loader = loader or _load_device
        self.audit = audit or AuditLog()
        self._policy = policy
        self.config: Any = None
        self.credential: Any = None
        self._graph: AgentGraph | None = None
        self.startup_error: EntraclawError | None = None
        self._lock = threading.Lock()

    # --- the device -------------------------------------------------------------------------------

    def prepare(self) -> None:
        """Load the config, open the key and fetch the .default token (errors kept, never raised)."""
        try:
            graph = self._ensure()
            with graph.deadline(DEFAULT_CALL_DEADLINE):
                graph.granted()
        except EntraclawError:
            pass
        except Exception:  # noqa: S110 - a warm-up must never kill the server; the call reports it
            pass

    def _ensure(self) -> AgentGraph:
        with self._lock:
            if self._graph is not None:
                return self._graph
            try:
                self.config, self.credential, self._graph = self._loader()
            except EntraclawError as exc:
                self.startup_error = exc
                raise
            self.startup_error = None
            return self._graph

    @property
    def graph(self) -> AgentGraph:
        return self._ensure()

    @property
    def policy(self) -> ConsentPolicy:
        if self._policy is None:
            self._ensure()  # the policy counts the Agent User's own domain as internal
            upn = getattr(self.config, "agent_user_upn", None) if self.config is not None else None
            self._policy = load_policy(agent_upn=upn)
        return self._policy

    # --- one call ------------------------------------------------------------------------------

    @asynccontextmanager
    async def call(self, tool: str, /, **arguments: Any) -> AsyncIterator[ToolCall]:
        from mcp.server.mcpserver.exceptions import ToolError

        call = ToolCall(tool, arguments)
        try:
            yield call
        except EntraclawError as exc:
            call.status = call.status if call.status != "ok" else "error"
            if isinstance(exc, HumanApprovalError):
                call.status = "refused" if exc.context.get("outcome") == "unsupported" else str(exc.context["outcome"])
            call.error_code = str(getattr(exc, "code", None) or type(exc).__name__)
            raise ToolError(tool_error_text(exc)) from None
        except anyio.get_cancelled_exc_class():
            call.status = "cancelled"
            raise
        except ToolError:
            call.status = "error"
            raise
        except Exception as exc:
            call.status, call.error_code = "error", type(exc).__name__
            raise ToolError(f"{tool} failed unexpectedly ({type(exc).__name__}). Fix: run `entraclaw doctor`; "
                            "the server's stderr has the details.") from exc
        finally:
            record = {
                "tool": tool,
                "arguments": reduce_arguments(arguments),
                "status": call.status,
                "duration_ms": round((time.monotonic() - call.started) * 1000, 1),
            }
            if call.error_code:
                record["error_code"] = call.error_code
            if call.request_ids:
                record["graph_request_ids"] = call.request_ids
            if call.consent:
                record["consent"] = call.consent
            try:
                self.audit.append(record)
            except ConfigurationError:
                import logging

                logging.getLogger(__name__).error("audit line for %s could not be written", tool, exc_info=True)

    async def graph_work(
        self, call: ToolCall, permission: Permission | None, work: Callable[[AgentGraph, str], T], *,
        deadline: float = DEFAULT_CALL_DEADLINE,
    ) -> T:
        """Run ``work(graph, scope)`` on a worker thread within ``deadline``; Graph errors get the agent's fix."""

        def run() -> T:
            graph = self._ensure()
            with graph.deadline(deadline) as ids:
                try:
                    scope = graph.scope_for(permission, call.tool) if permission is not None else ""
                    return work(graph, scope)
                except ConsentRequiredError:
                    raise
                except GraphRequestError as exc:
                    if getattr(exc, "retry_after", None) is None and graph.last_retry_after() is not None:
                        exc.retry_after = graph.last_retry_after()  # type: ignore[attr-defined]
                    raise AgentToolError(
                        f"{call.tool}: {exc.message}",
                        remedy=_agent_remedy(exc, call.tool, permission),
                        tool=call.tool,
                        code=getattr(exc, "code", None),
                        http_status=getattr(exc, "http_status", None),
                        request_id=getattr(exc, "request_id", None),
                    ) from None
                finally:
                    call.request_ids.extend(ids)

        return await anyio.to_thread.run_sync(run, abandon_on_cancel=True)

    # --- consent ---------------------------------------------------------------------------------

    async def require_human(self, call: ToolCall, ctx: Any, rule: Rule, summary: str) -> None:
        """Ask a human under ``rule``; returns on a yes, raises HumanApprovalError otherwise."""
        from entraclaw.mcp.elicit import ElicitationApprover

        policy = self.policy
        approver = ElicitationApprover(ctx)
        request = ConsentRequest(rule, call.tool, summary)
        outcome: Outcome
        if not approver.available():
            outcome = "unsupported"
        else:
            outcome = await approver.approve(request, timeout=policy.timeout)
        call.consent = {"rule": rule, "outcome": outcome, "approver": approver.name}
        if outcome == "accepted":
            return
        why = {
            "declined": "the human declined",
            "cancelled": "the human dismissed the question without answering",
            "timeout": f"no answer came within {policy.timeout:g} s",
            "unsupported": "this MCP client cannot ask its user (it did not declare the elicitation capability)",
        }[outcome]
        raise HumanApprovalError(
            f"{call.tool} was not done: the consent policy ({policy.describe()}) requires a human yes for "
            f"{rule.replace('_', ' ')} ({summary}), and {why}.",
            remedy=(
                "Use an MCP client that supports elicitation (form mode) so its user can approve, or change "
                "ENTRACLAW_MCP_CONSENT in the device's .env (`entraclaw doctor` shows where it is)."
                if outcome == "unsupported"
                else "Ask the human, then call the tool again if they agree."
            ),
            tool=call.tool,
            outcome=outcome,
            code=f"consent_{outcome}",
        )


def _load_device() -> tuple[Any, Any, AgentGraph]:
    from entraclaw.auth.credential import AgentUserCredential
    from entraclaw.config import USER_TOKEN_REQUIRED, load_config, make_session

    try:
        config = load_config(required=USER_TOKEN_REQUIRED)
    except ConfigurationError as exc:
        raise ConfigurationError(
            f"entraclaw-mcp cannot act: this device is not set up as an Agent User ({exc.message})",
            remedy="Run `entraclaw setup` (with the admin sign-in options) on this device, then restart the MCP "
            "server; `entraclaw doctor` shows what is missing.",
            problems=getattr(exc, "problems", None),
        ) from None
    session = make_session(config)
    try:
        credential = AgentUserCredential.from_config(config, session=session)
    except EntraclawError as exc:
        raise type(exc)(
            f"entraclaw-mcp cannot act: the device key ({config.key_ref}) does not open: {exc.message}",
            remedy=exc.remedy or "Run `entraclaw doctor`, then `entraclaw rotate --force` if the key is gone.",
            **exc.context,
        ) from None
    return config, credential, AgentGraph(credential, config.graph_url, session)
