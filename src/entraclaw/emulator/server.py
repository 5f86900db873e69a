"""The HTTPS server: routing, fault injection, and the threading/TLS plumbing.

Each connection gets its own thread, and the TLS handshake happens in that
thread (not in the accept loop), so one slow or silent client cannot stall the
others — 16 clients cold-starting at once are served in parallel.
Nothing request-specific is logged beyond method, path and status: bodies
carry assertions and tokens.
"""

from __future__ import annotations

import contextlib
import json
import logging
import socket
import ssl
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Protocol
from urllib.parse import parse_qsl, urlsplit

from entraclaw.emulator.aadsts import StsError, error_body
from entraclaw.emulator.faults import Fault, FaultInjector
from entraclaw.emulator.graph import GraphError, GraphService
from entraclaw.emulator.stats import Stats
from entraclaw.emulator.token_service import TokenService

__all__ = ["EmulatorHTTPServer", "Routes"]

log = logging.getLogger("entraclaw.emulator")

_MAX_BODY = 64 * 1024
_DRAIN_LIMIT = 1024 * 1024
_DISCOVERY_V2 = ["v2.0", ".well-known", "openid-configuration"]
_DISCOVERY_V1 = [".well-known", "openid-configuration"]
_MALFORMED_BODY = b'{"token_type": "Bearer", "access_token": "eyJ0eXAiOiJKV1Qi'


class Routes(Protocol):
    """What the handler needs from the emulator."""

    token_service: TokenService
    graph_service: GraphService
    faults: FaultInjector
    stats: Stats

    def discovery_document(self, tenant: str) -> dict[str, Any] | None: ...
    def jwks_document(self, tenant: str) -> dict[str, Any] | None: ...
    def clock(self) -> float: ...


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "entraclaw-emulator"
    sys_version = ""
    timeout = 30
    server: EmulatorHTTPServer

    # --- plumbing ---------------------------------------------------------------------

    def log_message(self, format: str, *args: Any) -> None:
        # The default writes the raw request line to stderr; keep only method/path/status at debug.
        return

    def _headers_lower(self) -> dict[str, str]:
        return {k.lower(): v for k, v in self.headers.items()}

    def _read_body(self) -> bytes | None:
        length_text = self.headers.get("Content-Length")
        if length_text is None:
            return b""
        try:
            length = int(length_text)
        except ValueError:
            length = -1
        if length < 0 or length > _MAX_BODY:
            if _MAX_BODY < length <= _DRAIN_LIMIT:
                # Read what the client is still sending so it sees the 413 instead of a reset.
                self.rfile.read(length)
            self._send_json(413, {"error": "invalid_request", "error_description": "Request body too large."})
            self.close_connection = True
            return None
        return self.rfile.read(length)

    def _send(self, status: int, body: bytes, content_type: str, headers: dict[str, str] | None = None) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store, no-cache")
        self.send_header("Pragma", "no-cache")
        self.send_header("x-ms-request-id", str(uuid.uuid4()))
        request_id = self.headers.get("client-request-id")
        if request_id:
            self.send_header("client-request-id", request_id)
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)
        log.debug("%s %s -> %d", self.command, urlsplit(self.path).path, status)

    def _send_json(self, status: int, payload: Any, headers: dict[str, str] | None = None) -> None:
        self._send(status, json.dumps(payload).encode(), "application/json; charset=utf-8", headers)

    # --- faults -----------------------------------------------------------------------

    def _apply_fault(self, fault: Fault, routes: Routes) -> bool:
        """Act out ``fault``; True when the request is answered (or dropped) and must not be routed."""
        if fault.kind == "delay":
            time.sleep(fault.delay)
            return False
        if fault.kind == "drop":
            self.close_connection = True
            with contextlib.suppress(OSError):
                self.connection.shutdown(socket.SHUT_RDWR)
            return True
        if fault.kind == "malformed":
            self._send(200, _MALFORMED_BODY, "application/json; charset=utf-8")
            return True
        now = routes.clock()
        correlation = self.headers.get("client-request-id")
        if urlsplit(self.path).path.startswith("/v1.0/"):
            self._graph_fault(fault, correlation)
            return True
        if fault.kind == "429":
            err = StsError(
                90055, "temporarily_unavailable", "TenantThrottlingError - There are too many incoming requests."
            )
            self._send_json(
                429, error_body(err, correlation_id=correlation, now=now), {"Retry-After": str(fault.retry_after)}
            )
            return True
        err = StsError(90033, "temporarily_unavailable", "A transient error has occurred. Please try again.")
        self._send_json(
            fault.status, error_body(err, correlation_id=correlation, now=now), {"Retry-After": str(fault.retry_after)}
        )
        return True

    def _graph_fault(self, fault: Fault, client_request_id: str | None) -> None:
        """Throttling and outages in Graph's shape: https://learn.microsoft.com/graph/throttling (429 with
        Retry-After) and https://learn.microsoft.com/graph/errors (503 serviceNotAvailable; other 5xx
        generalException)."""
        if fault.kind == "429":
            err = GraphError(429, "TooManyRequests", "Too many requests. Please try again later.")
        elif fault.status == 503:
            err = GraphError(503, "serviceNotAvailable", "The service is not available. Try again after a delay.")
        else:
            err = GraphError(fault.status, "generalException", "An unspecified error occurred.")
        err.headers["Retry-After"] = str(fault.retry_after)
        result = GraphService.error_response(err, str(uuid.uuid4()), client_request_id)
        self._send_json(result.status, result.body, result.headers)

    # --- routing ----------------------------------------------------------------------

    def do_GET(self) -> None:
        self._dispatch()

    def do_HEAD(self) -> None:
        self._dispatch()

    def do_POST(self) -> None:
        self._dispatch()

    def do_PATCH(self) -> None:
        self._dispatch()

    def do_DELETE(self) -> None:
        self._dispatch()

    def _dispatch(self) -> None:
        routes = self.server.routes
        parts = urlsplit(self.path)
        path = parts.path
        body = self._read_body() if self.command in ("POST", "PATCH", "PUT", "DELETE") else b""
        if body is None:
            return
        is_token = path.endswith("/oauth2/v2.0/token")
        is_form = is_token or path.endswith("/oauth2/v2.0/devicecode") or path == "/devicelogin"
        form: dict[str, str] = {}
        if is_form and self.command == "POST":
            form = self._parse_form(body)

        fault = routes.faults.take(path)
        if fault is not None and self._apply_fault(fault, routes):
            if is_token:
                routes.stats.record_token_request(
                    hop=routes.token_service.hop_hint(form),
                    grant_type=form.get("grant_type"),
                    client_id=form.get("client_id"),
                    status=0
                    if fault.kind == "drop"
                    else (200 if fault.kind == "malformed" else (429 if fault.kind == "429" else fault.status)),
                )
            return

        segments = [s for s in path.split("/") if s]
        if path.startswith("/v1.0/"):
            headers = self._headers_lower()
            query = dict(parse_qsl(parts.query, keep_blank_values=True))
            result = routes.graph_service.handle(self.command, path, query, headers, body)
            if result.body is None:
                self._send(result.status, b"", "application/json; charset=utf-8", result.headers)
            else:
                self._send_json(result.status, result.body, result.headers)
            return
        if is_token and len(segments) == 4:
            if self.command != "POST":
                self._send_json(405, {"error": "invalid_request", "error_description": "Use POST."})
                return
            outcome = routes.token_service.handle(segments[0], form, self.headers.get("client-request-id"))
            routes.stats.record_token_request(
                hop=outcome.hop,
                grant_type=form.get("grant_type"),
                client_id=form.get("client_id"),
                status=outcome.status,
            )
            self._send_json(outcome.status, outcome.body)
            return
        if path.endswith("/oauth2/v2.0/devicecode") and len(segments) == 4 and self.command == "POST":
            outcome = routes.token_service.device_authorization(
                segments[0], form, self.headers.get("client-request-id")
            )
            self._send_json(outcome.status, outcome.body)
            return
        if path == "/devicelogin" and self.command == "POST":
            # Stands in for the sign-in page: approve or decline a user code (entraclaw emulator approve).
            action = form.get("action", "approve")
            if not form.get("user_code") or action not in ("approve", "deny"):
                self._send_json(
                    400,
                    {"error": "invalid_request", "error_description": "Send user_code and action=approve|deny."},
                )
                return
            problem = routes.token_service.decide_device_code(
                form["user_code"], approve=action == "approve", username=form.get("username")
            )
            if problem is not None:
                self._send_json(404, {"error": "invalid_request", "error_description": problem})
                return
            self._send_json(200, {"user_code": form["user_code"], "decision": action})
            return
        if self.command in ("GET", "HEAD"):
            document: dict[str, Any] | None = None
            if segments[1:] in (_DISCOVERY_V2, _DISCOVERY_V1):
                document = routes.discovery_document(segments[0])
            elif len(segments) == 4 and segments[1:] == ["discovery", "v2.0", "keys"]:
                document = routes.jwks_document(segments[0])
            else:
                self._send_json(404, {"error": "not_found", "error_description": f"No route for {path}."})
                return
            if document is None:
                err = StsError(
                    90002,
                    "invalid_tenant",
                    f"Tenant '{segments[0]}' not found. Check to make sure you have the correct tenant ID.",
                )
                self._send_json(
                    400, error_body(err, correlation_id=self.headers.get("client-request-id"), now=routes.clock())
                )
                return
            self._send_json(200, document)
            return
        self._send_json(404, {"error": "not_found", "error_description": f"No route for {self.command} {path}."})

    def _parse_form(self, body: bytes) -> dict[str, str]:
        if "application/x-www-form-urlencoded" not in self.headers.get("Content-Type", ""):
            return {}
        try:
            pairs = parse_qsl(body.decode("utf-8"), keep_blank_values=True, strict_parsing=False)
        except UnicodeDecodeError:
            return {}
        form: dict[str, str] = {}
        for name, value in pairs:
            form.setdefault(name, value)
        return form


class EmulatorHTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False
    # socketserver's default backlog of 5 drops SYNs when many clients start at once, and each
    # dropped SYN costs the client a 1 s retransmit.
    request_queue_size = 128

    def __init__(self, address: tuple[str, int], ssl_context: ssl.SSLContext, routes: Routes) -> None:
        self.address_family = socket.AF_INET6 if ":" in address[0] else socket.AF_INET
        self.ssl_context = ssl_context
        self.routes = routes
        self._connections: set[socket.socket] = set()
        self._conn_lock = threading.Lock()
        super().__init__(address, _Handler)

    def process_request_thread(self, request: Any, client_address: Any) -> None:
        try:
            request.settimeout(10)
            # Headers and body leave in separate writes; without NODELAY, Nagle + the client's
            # delayed ACK add ~40 ms to every response.
            request.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            tls = self.ssl_context.wrap_socket(request, server_side=True)
        except (OSError, ssl.SSLError) as exc:
            log.debug("TLS handshake with %s failed: %s", client_address, exc)
            self.shutdown_request(request)
            return
        with self._conn_lock:
            self._connections.add(tls)
        try:
            self.finish_request(tls, client_address)
        except (OSError, ssl.SSLError) as exc:
            log.debug("connection from %s ended: %s", client_address, exc)
        except Exception:  # a bug in a handler must not kill the server; keep the trace for debugging
            log.exception("request from %s failed", client_address)
        finally:
            with self._conn_lock:
                self._connections.discard(tls)
            self.shutdown_request(tls)

    def close_connections(self) -> None:
        """Cut idle keep-alive connections so stop() does not wait for clients to hang up."""
        with self._conn_lock:
            conns = list(self._connections)
        for conn in conns:
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)

    def serve_in_thread(self) -> threading.Thread:
        thread = threading.Thread(
            target=self.serve_forever, kwargs={"poll_interval": 0.1}, name="entraclaw-emulator", daemon=True
        )
        thread.start()
        return thread
