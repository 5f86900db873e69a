"""The HTTPS server: routing, fault injection, and the threading/TLS plumbing.

Each connection gets its own thread, and the TLS handshake happens in that
thread (not in the accept loop), so one slow or silent client cannot stall the
others — 16 clients cold-starting at once are served in parallel.
Nothing request-specific is logged beyond method, path and status: bodies
carry assertions and tokens.

Bounds, so that no client can hold the server's resources for ever:

- ``max_connections`` connections at once; the next one is closed at accept;
- ``request_deadline`` seconds for the handshake and for each request's line,
  headers and body (a watchdog shuts the socket down; the idle timeout alone
  restarts with every byte, so a client dripping a byte every few seconds
  would otherwise keep a thread for ever);
- bodies need one valid ``Content-Length`` (RFC 9112 6.3: two lengths or a
  length that is not a non-negative integer make the message invalid, so 400);
  ``Transfer-Encoding`` is refused with 411 (chunked) or 501 (anything else)
  and the connection closed, so a chunked body is never read as a next request.

One outer guard in the handler answers any unexpected exception with a 500 in
Entra's (or Graph's) error shape and logs it: a bug must never drop a
connection without an answer.
"""

from __future__ import annotations

import contextlib
import heapq
import json
import logging
import re
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
from entraclaw.emulator.graph import GraphError, GraphService, is_graph_path
from entraclaw.emulator.stats import Stats
from entraclaw.emulator.token_service import TokenService

__all__ = ["EmulatorHTTPServer", "Routes"]

log = logging.getLogger("entraclaw.emulator")

_MAX_BODY = 64 * 1024
# "Write requests in the Microsoft Graph API are limited to 4 MB" (https://learn.microsoft.com/graph/use-the-api):
# a PATCH of a Blueprint's keyCredentials carries every device's certificate (~1.2 KB each).
_GRAPH_MAX_BODY = 4 * 1024 * 1024
_DRAIN_LIMIT = 1024 * 1024
_DIGITS = re.compile(r"[0-9]{1,12}")
DEFAULT_MAX_CONNECTIONS = 128
DEFAULT_REQUEST_DEADLINE = 20.0
# The generic AADSTS code for "the service failed" (documented in the AADSTS reference,
# https://learn.microsoft.com/entra/identity-platform/reference-error-codes : 50000
# "TokenIssuanceError - There's an issue with the sign-in service").
_INTERNAL_ERROR = StsError(
    50000, "server_error", "There was an error issuing a token or an issue with our sign-in service."
)
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

    def _refuse(self, status: int, description: str) -> None:
        self._send_json(status, {"error": "invalid_request", "error_description": description})
        self.close_connection = True

    def _read_body(self) -> bytes | None:
        """The body, or None when the request was refused (and answered) for its framing."""
        if self.headers.get("Transfer-Encoding") is not None:
            # Without decoding, a chunked body would be read as the next request on this
            # connection; refusing it (and closing) is what RFC 9112 6.1 allows a server to do.
            if self.headers.get("Content-Length") is not None:
                self._refuse(400, "Transfer-Encoding and Content-Length must not both be sent.")
            elif self.headers.get("Transfer-Encoding", "").strip().lower() == "chunked":
                self._refuse(411, "Send the body with a Content-Length; chunked bodies are not accepted.")
            else:
                self._refuse(501, "Transfer-Encoding is not supported; send the body with a Content-Length.")
            return None
        lengths = self.headers.get_all("Content-Length") or []
        if not lengths:
            return b""
        if len(lengths) > 1:
            self._refuse(400, "The request has more than one Content-Length header.")
            return None
        text = lengths[0].strip()
        if not _DIGITS.fullmatch(text):
            self._refuse(400, "The Content-Length header is not a non-negative integer.")
            return None
        length = int(text)
        graph = self.path.startswith(("/v1.0/", "/beta/"))
        if length > (_GRAPH_MAX_BODY if graph else _MAX_BODY):
            if length <= _DRAIN_LIMIT:
                # Read what the client is still sending so it sees the 413 instead of a reset.
                self.rfile.read(length)
            self._send_json(413, {"error": "invalid_request", "error_description": "Request body too large."})
            self.close_connection = True
            return None
        return self.rfile.read(length)

    def _send(self, status: int, body: bytes, content_type: str, headers: dict[str, str] | None = None) -> None:
        self._answered = True
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
        if fault.kind == "gate":
            assert fault.release is not None
            if fault.entered is not None:
                fault.entered.set()
            fault.release.wait(60)
            return False
        if fault.kind == "respond":
            self._send(
                fault.status,
                fault.body,
                fault.headers.get("Content-Type", "application/json"),
                {k: v for k, v in fault.headers.items() if k.lower() not in ("content-type", "content-length")},
            )
            return True
        if fault.kind == "malformed":
            self._send(200, _MALFORMED_BODY, "application/json; charset=utf-8")
            return True
        now = routes.clock()
        correlation = self.headers.get("client-request-id")
        if is_graph_path(urlsplit(self.path).path):
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

    def handle_one_request(self) -> None:
        self._answered = False
        self.server.watchdog.arm(self.connection, self.server.request_deadline)
        try:
            super().handle_one_request()
        finally:
            self.server.watchdog.disarm(self.connection)

    def _dispatch(self) -> None:
        try:
            self._route()
        except (ConnectionError, ssl.SSLError, TimeoutError):
            raise  # the client went away or stalled: nothing to answer, the connection loop ends it
        except Exception:
            # The one outer guard: whatever a route does wrong, the client gets an answer in
            # the service's own error shape and the trace goes to the log (never the body).
            log.exception("%s %s failed inside the emulator", self.command, urlsplit(self.path).path)
            if getattr(self, "_answered", False):
                self.close_connection = True  # a partial answer cannot be completed
                return
            self.close_connection = True
            with contextlib.suppress(OSError):
                self._send_internal_error()

    def _send_internal_error(self) -> None:
        routes = self.server.routes
        if is_graph_path(urlsplit(self.path).path):
            stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime())
            request_id = str(uuid.uuid4())
            payload: dict[str, Any] = {
                "error": {
                    "code": "InternalServerError",
                    "message": "An internal server error occurred.",
                    "innerError": {
                        "date": stamp,
                        "request-id": request_id,
                        "client-request-id": self.headers.get("client-request-id") or request_id,
                    },
                }
            }
            self._send_json(500, payload)
            return
        self._send_json(
            500, error_body(_INTERNAL_ERROR, correlation_id=self.headers.get("client-request-id"), now=routes.clock())
        )

    def _route(self) -> None:
        routes = self.server.routes
        parts = urlsplit(self.path)
        path = parts.path
        body = self._read_body() if self.command in ("POST", "PATCH", "PUT", "DELETE") else b""
        # The request is in: its processing (a delay fault, a slow signature) is not the client's time.
        self.server.watchdog.disarm(self.connection)
        if body is None:
            return
        is_token = path.endswith("/oauth2/v2.0/token")
        is_form = is_token or path.endswith("/oauth2/v2.0/devicecode") or path == "/devicelogin"
        form: dict[str, str] = {}
        if is_form and self.command == "POST":
            form = self._parse_form(body)

        fault = routes.faults.take(path)
        # "gate" and "delay" fall through to routing, which records the request. The others are
        # recorded before they are acted out: a client that has its answer (or its dropped
        # connection) can count on the request being in the stats already.
        if fault is not None and is_token and fault.kind not in ("gate", "delay"):
            routes.stats.record_token_request(
                hop=routes.token_service.hop_hint(form),
                grant_type=form.get("grant_type"),
                client_id=form.get("client_id"),
                status=0
                if fault.kind == "drop"
                else (200 if fault.kind == "malformed" else (429 if fault.kind == "429" else fault.status)),
                # "respond" records its own status
            )
        if fault is not None and self._apply_fault(fault, routes):
            return

        segments = [s for s in path.split("/") if s]
        if is_graph_path(path):
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


class _Watchdog:
    """Shuts a connection down when its deadline passes: one thread for all connections."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._heap: list[tuple[float, int, int]] = []
        self._armed: dict[int, tuple[int, socket.socket]] = {}
        self._generation = 0
        self._stopped = False
        self._thread = threading.Thread(target=self._run, name="entraclaw-emulator-watchdog", daemon=True)
        self._thread.start()

    def arm(self, conn: socket.socket, seconds: float) -> None:
        with self._cond:
            self._generation += 1
            self._armed[id(conn)] = (self._generation, conn)
            heapq.heappush(self._heap, (time.monotonic() + seconds, id(conn), self._generation))
            self._cond.notify()

    def disarm(self, conn: socket.socket) -> None:
        with self._cond:
            self._armed.pop(id(conn), None)

    def stop(self) -> None:
        with self._cond:
            self._stopped = True
            self._cond.notify()

    def _run(self) -> None:
        while True:
            expired: list[socket.socket] = []
            with self._cond:
                if self._stopped:
                    return
                now = time.monotonic()
                while self._heap and self._heap[0][0] <= now:
                    _, conn_id, generation = heapq.heappop(self._heap)
                    armed = self._armed.get(conn_id)
                    if armed is not None and armed[0] == generation:
                        del self._armed[conn_id]
                        expired.append(armed[1])
                if not expired:
                    # Entries of disarmed connections stay in the heap until their time; drop them
                    # early when they dominate, so the heap tracks live connections only.
                    if len(self._heap) > 4 * len(self._armed) + 64:
                        live = {(c, g) for c, (g, _) in self._armed.items()}
                        self._heap = [e for e in self._heap if (e[1], e[2]) in live]
                        heapq.heapify(self._heap)
                    timeout = self._heap[0][0] - now if self._heap else None
                    self._cond.wait(timeout)
                    continue
            for conn in expired:
                log.debug("connection cut at its request deadline")
                # The plain socket's shutdown, not SSLSocket's: that one also drops the TLS
                # object under the thread that is blocked reading from it.
                with contextlib.suppress(OSError):
                    socket.socket.shutdown(conn, socket.SHUT_RDWR)


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
        self.max_connections = DEFAULT_MAX_CONNECTIONS
        self.request_deadline = DEFAULT_REQUEST_DEADLINE
        self.active_connections = 0
        self.refused_connections = 0
        self.watchdog = _Watchdog()
        super().__init__(address, _Handler)

    def process_request(self, request: Any, client_address: Any) -> None:
        with self._conn_lock:
            admitted = self.active_connections < self.max_connections
            if admitted:
                self.active_connections += 1
            else:
                self.refused_connections += 1
        if not admitted:
            # Over the cap: close at once rather than queue a thread per connection.
            log.warning("connection from %s refused: %d connections open", client_address, self.max_connections)
            self.shutdown_request(request)
            return
        try:
            super().process_request(request, client_address)
        except BaseException:
            with self._conn_lock:
                self.active_connections -= 1
            raise

    def process_request_thread(self, request: Any, client_address: Any) -> None:
        try:
            self._serve_connection(request, client_address)
        finally:
            with self._conn_lock:
                self.active_connections -= 1

    def server_close(self) -> None:
        self.watchdog.stop()
        super().server_close()

    def _serve_connection(self, request: Any, client_address: Any) -> None:
        self.watchdog.arm(request, self.request_deadline)  # the TLS handshake is bounded too
        try:
            request.settimeout(10)
            # Headers and body leave in separate writes; without NODELAY, Nagle + the client's
            # delayed ACK add ~40 ms to every response.
            request.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            tls = self.ssl_context.wrap_socket(request, server_side=True)
        except (OSError, ssl.SSLError) as exc:
            log.debug("TLS handshake with %s failed: %s", client_address, exc)
            self.watchdog.disarm(request)
            self.shutdown_request(request)
            return
        self.watchdog.disarm(request)
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
