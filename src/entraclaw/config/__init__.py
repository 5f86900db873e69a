"""One configuration for an agent: what it is (tenant, Blueprint, Agent Identity, Agent User),
which key it signs with, and whom it trusts for TLS.

Precedence, the same for every field and implemented only in :func:`load_config`:

====  ========================================  ==========================================
rank  source                                    how it is named in errors
====  ========================================  ==========================================
1     explicit arguments (``overrides``)        ``argument <field>``
2     an ``AgentConfig`` passed as ``base``     ``the AgentConfig passed in``
3     the process environment                   ``process environment``
4     ``.env`` in the state directory           ``<path> line <n>``
5     derived (key reference from thumbprint)   ``derived from <KEY>``
6     built-in default                          ``default``
====  ========================================  ==========================================

An empty value counts as unset at every rank. Every field is validated wherever it
came from, and every missing or invalid field is reported in one
:class:`~entraclaw.errors.ConfigurationError` whose ``problems`` lists them all,
each naming the key, where it came from (file and line) and the fix.

TLS trust has one rule too (:func:`requests_verify`): ``ENTRACLAW_CA_BUNDLE`` if set,
else the ``certifi`` bundle. ``REQUESTS_CA_BUNDLE`` / ``CURL_CA_BUNDLE`` are ignored by
design (sessions use ``trust_env=False``): they are set machine-wide for other
programs and would silently replace the trust anchors of the token endpoint.

The package, one concern a module: ``names`` (the table of keys and defaults), ``model``
(AgentConfig, KeyReference, Origin, problems), ``validators`` (raw text -> value), ``loader`` (the
precedence: load_config, raw_settings, save_config), ``session`` (TLS trust and proxy: make_session),
``signing`` (open_signer). Import the public names from ``entraclaw.config``.
"""

from __future__ import annotations

from entraclaw.config.loader import load_config, raw_settings, save_config
from entraclaw.config.model import AgentConfig, ConfigProblem, KeyReference, Origin, config_to_env
from entraclaw.config.names import (
    DEFAULT_AUTHORITY_HOST,
    DEFAULT_GRAPH_URL,
    ENV_AGENT_IDENTITY_ID,
    ENV_AGENT_USER_ID,
    ENV_AGENT_USER_UPN,
    ENV_AUTHORITY_HOST,
    ENV_BLUEPRINT_APP_ID,
    ENV_BLUEPRINT_CERT_SHA1,
    ENV_BLUEPRINT_CERT_THUMBPRINT,
    ENV_BLUEPRINT_CERT_X5T_S256,
    ENV_BLUEPRINT_OBJECT_ID,
    ENV_CA_BUNDLE,
    ENV_GRAPH_URL,
    ENV_HOME,
    ENV_KEY_PASSWORD,
    ENV_KEY_PROVIDER,
    ENV_KEY_REF,
    ENV_PROXY,
    ENV_SCOPES,
    ENV_TENANT_ID,
    FIELD_ENV,
    TOKEN_REQUIRED,
    USER_TOKEN_REQUIRED,
)
from entraclaw.config.session import make_session, requests_verify
from entraclaw.config.signing import open_signer

__all__ = [
    "DEFAULT_AUTHORITY_HOST",
    "DEFAULT_GRAPH_URL",
    "ENV_AGENT_IDENTITY_ID",
    "ENV_AGENT_USER_ID",
    "ENV_AGENT_USER_UPN",
    "ENV_AUTHORITY_HOST",
    "ENV_BLUEPRINT_APP_ID",
    "ENV_BLUEPRINT_CERT_SHA1",
    "ENV_BLUEPRINT_CERT_THUMBPRINT",
    "ENV_BLUEPRINT_CERT_X5T_S256",
    "ENV_BLUEPRINT_OBJECT_ID",
    "ENV_CA_BUNDLE",
    "ENV_GRAPH_URL",
    "ENV_HOME",
    "ENV_KEY_PASSWORD",
    "ENV_KEY_PROVIDER",
    "ENV_KEY_REF",
    "ENV_PROXY",
    "ENV_SCOPES",
    "ENV_TENANT_ID",
    "FIELD_ENV",
    "TOKEN_REQUIRED",
    "USER_TOKEN_REQUIRED",
    "AgentConfig",
    "ConfigProblem",
    "KeyReference",
    "Origin",
    "config_to_env",
    "load_config",
    "make_session",
    "open_signer",
    "raw_settings",
    "requests_verify",
    "save_config",
]

