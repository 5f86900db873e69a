"""The one TLS-trust and proxy rule for every HTTP session: :func:`requests_verify`, :func:`make_session`."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

from entraclaw.config.model import AgentConfig

if TYPE_CHECKING:
    import requests

# --- using it: the key and the TLS trust ---------------------------------------------------


def requests_verify(source: AgentConfig | str | os.PathLike[str] | None = None) -> str | bool:
    """The ``verify=`` for every session: ``ENTRACLAW_CA_BUNDLE`` when configured, else True (certifi)."""
    bundle = source.ca_bundle if isinstance(source, AgentConfig) else source
    if bundle is None:
        return True
    return os.fspath(bundle)


def make_session(
    source: AgentConfig | str | os.PathLike[str] | None = None, *, proxy: str | None = None
) -> requests.Session:
    """A session that trusts only what :func:`requests_verify` says and reaches hosts through the one
    proxy rule (:mod:`entraclaw.platform.proxy`: ENTRACLAW_PROXY > HTTPS_PROXY/HTTP_PROXY > the Windows
    system proxy; NO_PROXY), resolved here once. ``trust_env`` stays off: the REQUESTS_CA_BUNDLE
    family never replaces the trust anchors. ``proxy``: ENTRACLAW_PROXY when ``source`` is not a config.
    """
    from entraclaw.platform.proxy import PinnedSession, resolve_proxy_rule

    explicit = source.proxy if isinstance(source, AgentConfig) and source.proxy is not None else proxy
    session = PinnedSession(resolve_proxy_rule(explicit))
    session.verify = requests_verify(source)
    return session
