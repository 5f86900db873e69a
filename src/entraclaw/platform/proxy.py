"""The one proxy rule for every HTTP session entraclaw makes, with TLS trust kept pinned.

Why not requests' own ``trust_env``: with it on, ``REQUESTS_CA_BUNDLE`` / ``CURL_CA_BUNDLE``
replace ``session.verify`` (the machines set them for other programs), so the CA the
configuration names would silently stop deciding trust. Sessions here keep ``trust_env``
off and this module resolves the proxy itself, once per session, and picks it per URL.

Precedence (first that says something wins):

1. ``ENTRACLAW_PROXY`` (``--proxy`` on setup/rotate/doctor, ``.env``, the process
   environment, by the config's one precedence): a proxy URL, or ``direct`` for none.
2. The process environment: ``https_proxy`` / ``HTTPS_PROXY``, ``http_proxy`` /
   ``HTTP_PROXY``, ``all_proxy`` / ``ALL_PROXY`` (lower case first, as curl and urllib).
3. Windows only, when the environment names none: the system (WinINet) proxy, read by
   :func:`urllib.request.getproxies_registry`, with its bypass list (``ProxyOverride``).

``no_proxy`` / ``NO_PROXY`` exempts hosts from 1 and 2 (requests' matching: host
suffixes, ``host:port``, CIDR blocks, ``*``). The proxy only carries the bytes: HTTPS goes
through a CONNECT tunnel and the server's certificate is still checked against the
session's ``verify``.
"""

from __future__ import annotations

import os
import sys
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import requests

__all__ = [
    "DIRECT",
    "ENV_PROXY",
    "PinnedSession",
    "ProxyFailure",
    "ProxyRule",
    "proxy_failure",
    "redact_proxy",
    "resolve_proxy_rule",
    "validate_proxy_url",
]

ENV_PROXY = "ENTRACLAW_PROXY"
#: ``ENTRACLAW_PROXY=direct``: no proxy at all, whatever the environment or the system say.
DIRECT = "direct"
_SCHEMES = ("http", "https")


def redact_proxy(url: str) -> str:
    """``scheme://host:port`` of a proxy URL: user and password never reach a message or a log."""
    parts = urlsplit(url if "://" in url else f"http://{url}")
    host = parts.hostname or "?"
    if ":" in host:
        host = f"[{host}]"
    try:
        port = parts.port
    except ValueError:
        port = None
    return f"{parts.scheme}://{host}" + (f":{port}" if port else "")


def validate_proxy_url(text: str) -> str:
    """The proxy URL as given, or ``direct``; ValueError (with no credential in it) when unusable."""
    value = text.strip()
    if value.lower() in (DIRECT, "none"):
        return DIRECT
    parts = urlsplit(value)
    if parts.scheme not in _SCHEMES or not parts.hostname:
        raise ValueError(
            f"{redact_proxy(value) if '://' in value else 'the value'} is not an http:// or https:// proxy URL"
        )
    try:
        parts.port  # noqa: B018 - raises on a port that is not a number
    except ValueError:
        raise ValueError(f"{redact_proxy(value)} has a port that is not a number") from None
    return value


@dataclass(frozen=True)
class ProxyRule:
    """Which proxy a URL goes through. ``proxies`` maps a URL scheme to a proxy URL."""

    proxies: Mapping[str, str]
    no_proxy: str | None = None
    #: Where the proxy came from, as messages name it ("ENTRACLAW_PROXY", "HTTPS_PROXY", ...).
    source: str = "none"
    #: The Windows system proxy's own bypass list decides (``ProxyOverride``), not NO_PROXY.
    system_bypass: bool = False

    def for_url(self, url: str) -> dict[str, str]:
        """The ``proxies=`` for one request: ``{}`` means a direct connection."""
        scheme = urlsplit(url).scheme.lower()
        proxy = self.proxies.get(scheme)
        if proxy is None or self._bypassed(url):
            return {}
        return {scheme: proxy}

    def _bypassed(self, url: str) -> bool:
        if self.system_bypass:
            host = urlsplit(url).hostname or ""
            return bool(urllib.request.proxy_bypass_registry(host))  # type: ignore[attr-defined]
        if not self.no_proxy:
            return False
        # requests' matcher (suffixes, host:port, CIDR, '*'), given the value instead of reading the
        # environment, so NO_PROXY applies to ENTRACLAW_PROXY too.
        return bool(requests.utils.should_bypass_proxies(url, no_proxy=self.no_proxy))

    def describe(self, url: str | None = None) -> str:
        """For doctor and messages: the proxy (no credentials) and where it came from."""
        if url is not None:
            chosen = self.for_url(url)
            if not chosen:
                return "direct" + (" (NO_PROXY)" if self.proxies and self._bypassed(url) else "")
            return f"{redact_proxy(next(iter(chosen.values())))} (from {self.source})"
        if not self.proxies:
            return "direct" + (f" ({self.source})" if self.source not in ("none", "") else "")
        shown = sorted({redact_proxy(p) for p in self.proxies.values()})
        return ", ".join(shown) + f" (from {self.source})" + (f"; NO_PROXY={self.no_proxy}" if self.no_proxy else "")


def _env_value(env: Mapping[str, str], name: str) -> tuple[str, str] | None:
    for key in (name.lower(), name.upper()):
        value = env.get(key, "").strip()
        if value:
            return key, value
    return None


def resolve_proxy_rule(
    explicit: str | None = None,
    *,
    environ: Mapping[str, str] | None = None,
    platform: str | None = None,
    explicit_source: str = ENV_PROXY,
) -> ProxyRule:
    """The rule of the module docstring. ``explicit`` is ENTRACLAW_PROXY as the config resolved it."""
    env = os.environ if environ is None else environ
    no_proxy = (_env_value(env, "no_proxy") or ("", None))[1]
    if explicit is None and env.get(ENV_PROXY, "").strip():
        explicit = env[ENV_PROXY]
    if explicit is not None and explicit.strip():
        try:
            value = validate_proxy_url(explicit)
        except ValueError as exc:
            from entraclaw.errors import ConfigurationError

            raise ConfigurationError(
                f"{explicit_source}: {exc}.",
                remedy="Set ENTRACLAW_PROXY to http://host:port (or `direct`), e.g. "
                "`entraclaw setup --proxy http://proxy.example:3128`.",
                variable=ENV_PROXY,
            ) from None
        if value == DIRECT:
            return ProxyRule({}, None, f"{explicit_source}=direct")
        return ProxyRule(dict.fromkeys(_SCHEMES, value), no_proxy, explicit_source)
    found: dict[str, str] = {}
    sources: list[str] = []
    for scheme in _SCHEMES:
        hit = _env_value(env, f"{scheme}_proxy")
        if hit is not None:
            found[scheme] = hit[1]
            sources.append(hit[0])
    if "https" not in found or "http" not in found:
        every = _env_value(env, "all_proxy")
        if every is not None:
            for scheme in _SCHEMES:
                found.setdefault(scheme, every[1])
            sources.append(every[0])
    if found:
        return ProxyRule(found, no_proxy, " / ".join(sources))
    if (platform or sys.platform) == "win32" and environ is None:
        # What Internet Options / `netsh winhttp` users set; urllib.request.getproxies() reads the same
        # registry values when the environment names no proxy.
        registry: dict[str, str] = dict(urllib.request.getproxies_registry())  # type: ignore[attr-defined]
        system = {s: _with_scheme(registry[s]) for s in _SCHEMES if registry.get(s)}
        if system:
            return ProxyRule(system, None, "the Windows system proxy", system_bypass=True)
    return ProxyRule({}, None, "none")


def _with_scheme(value: str) -> str:
    return value if "://" in value else f"http://{value}"


class ProxyFailure(requests.exceptions.ProxyError):
    """The proxy could not be reached, refused the tunnel, or asked for credentials (407).

    Still a ``requests`` ProxyError, so every caller's network handling sees it as before;
    it also names the proxy (``proxy``, no credentials), where it came from and whether it
    asked for authentication (``auth_required``).
    """

    def __init__(self, *args: Any, proxy: str, source: str, auth_required: bool, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.proxy = proxy
        self.source = source
        self.auth_required = auth_required


def proxy_failure(exc: BaseException) -> ProxyFailure | None:
    """The :class:`ProxyFailure` behind ``exc`` (itself or a cause), if any."""
    seen = 0
    current: BaseException | None = exc
    while current is not None and seen < 8:
        if isinstance(current, ProxyFailure):
            return current
        current = current.__cause__ or current.__context__
        seen += 1
    return None


class PinnedSession(requests.Session):
    """A session whose trust is only ``verify`` and whose proxy is only ``proxy_rule``'s choice per URL."""

    def __init__(self, proxy_rule: ProxyRule | None = None) -> None:
        super().__init__()
        self.trust_env = False
        self.proxy_rule = proxy_rule if proxy_rule is not None else ProxyRule({})

    def merge_environment_settings(self, url: Any, proxies: Any, stream: Any, verify: Any, cert: Any) -> Any:
        settings = super().merge_environment_settings(url, proxies, stream, verify, cert)
        settings["proxies"] = {**self.proxy_rule.for_url(str(url)), **(proxies or {})}
        return settings

    def rebuild_proxies(self, prepared_request: Any, proxies: Any) -> dict[str, str]:
        # A redirect is a new URL: the same rule chooses again (requests would reuse session.proxies).
        return self.proxy_rule.for_url(str(prepared_request.url))

    def send(self, request: Any, **kwargs: Any) -> Any:
        proxies = kwargs.get("proxies") or {}
        scheme = urlsplit(str(request.url)).scheme.lower()
        proxy = proxies.get(scheme)
        try:
            response = super().send(request, **kwargs)
        except requests.exceptions.ProxyError as exc:
            if proxy is None or isinstance(exc, ProxyFailure):
                raise
            auth = "407" in str(exc)
            raise ProxyFailure(
                str(exc), proxy=redact_proxy(proxy), source=self.proxy_rule.source, auth_required=auth,
                request=request,
            ) from exc
        if proxy is not None and response.status_code == 407:
            # A plain-HTTP request through the proxy gets the 407 as a response, not a failed tunnel.
            response.close()
            raise ProxyFailure(
                "407 Proxy Authentication Required", proxy=redact_proxy(proxy), source=self.proxy_rule.source,
                auth_required=True, request=request, response=response,
            )
        return response
