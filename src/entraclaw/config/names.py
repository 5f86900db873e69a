"""The one table of configuration names: environment / ``.env`` keys, the field each fills, defaults,
what a token needs, and an example value per field for error fixes."""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import Literal

from entraclaw.platform import paths

ENV_TENANT_ID = "ENTRACLAW_TENANT_ID"
ENV_AUTHORITY_HOST = "ENTRACLAW_AUTHORITY_HOST"
ENV_GRAPH_URL = "ENTRACLAW_GRAPH_URL"
ENV_BLUEPRINT_APP_ID = "ENTRACLAW_BLUEPRINT_APP_ID"
ENV_BLUEPRINT_OBJECT_ID = "ENTRACLAW_BLUEPRINT_OBJECT_ID"
ENV_AGENT_IDENTITY_ID = "ENTRACLAW_AGENT_IDENTITY_ID"
ENV_AGENT_USER_ID = "ENTRACLAW_AGENT_USER_ID"
ENV_AGENT_USER_UPN = "ENTRACLAW_AGENT_USER_UPN"
ENV_BLUEPRINT_CERT_X5T_S256 = "ENTRACLAW_BLUEPRINT_CERT_X5T_S256"
ENV_BLUEPRINT_CERT_SHA1 = "ENTRACLAW_BLUEPRINT_CERT_SHA1"
ENV_KEY_REF = "ENTRACLAW_KEY_REF"
ENV_KEY_PROVIDER = "ENTRACLAW_KEY_PROVIDER"
ENV_SCOPES = "ENTRACLAW_SCOPES"
ENV_CA_BUNDLE = "ENTRACLAW_CA_BUNDLE"
#: A proxy URL or ``direct``; the one proxy rule is entraclaw.platform.proxy.
ENV_PROXY = "ENTRACLAW_PROXY"
#: Read on input only: x5t#S256 or SHA-1, told apart by shape. Writes use the two keys above.
ENV_BLUEPRINT_CERT_THUMBPRINT = "ENTRACLAW_BLUEPRINT_CERT_THUMBPRINT"
#: Password of an encrypted PEM key: a secret, so read from the process environment only, never from .env.
ENV_KEY_PASSWORD = "ENTRACLAW_KEY_PASSWORD"  # noqa: S105 - the variable's name, not a password
ENV_HOME = paths.ENV_HOME

DEFAULT_AUTHORITY_HOST = "https://login.microsoftonline.com"
DEFAULT_GRAPH_URL = "https://graph.microsoft.com/v1.0"

#: AgentConfig field -> environment / .env name, in the order ``save_config`` writes them.
FIELD_ENV: Mapping[str, str] = MappingProxyType(
    {
        "tenant_id": ENV_TENANT_ID,
        "authority_host": ENV_AUTHORITY_HOST,
        "graph_url": ENV_GRAPH_URL,
        "blueprint_app_id": ENV_BLUEPRINT_APP_ID,
        "blueprint_object_id": ENV_BLUEPRINT_OBJECT_ID,
        "agent_identity_app_id": ENV_AGENT_IDENTITY_ID,
        "agent_user_id": ENV_AGENT_USER_ID,
        "agent_user_upn": ENV_AGENT_USER_UPN,
        "cert_x5t_s256": ENV_BLUEPRINT_CERT_X5T_S256,
        "cert_sha1": ENV_BLUEPRINT_CERT_SHA1,
        "key_ref": ENV_KEY_REF,
        "key_provider": ENV_KEY_PROVIDER,
        "scopes": ENV_SCOPES,
        "ca_bundle": ENV_CA_BUNDLE,
        "proxy": ENV_PROXY,
    }
)
_ENV_FIELD = {env: name for name, env in FIELD_ENV.items()}

#: What a token needs. ``a|b`` means one of the two.
TOKEN_REQUIRED: tuple[str, ...] = ("tenant_id", "blueprint_app_id", "agent_identity_app_id", "key_ref")
USER_TOKEN_REQUIRED: tuple[str, ...] = (*TOKEN_REQUIRED, "agent_user_id|agent_user_upn")

KeyProvider = Literal["tpm", "software_ksp", "pem"]
_KEY_PROVIDERS: tuple[str, ...] = ("tpm", "software_ksp", "pem")

#: An example value per field, for the fix of a missing setting.
_WHAT: Mapping[str, str] = {
    "tenant_id": "<directory (tenant) id>",
    "authority_host": DEFAULT_AUTHORITY_HOST,
    "graph_url": DEFAULT_GRAPH_URL,
    "blueprint_app_id": "<Blueprint app id>",
    "blueprint_object_id": "<Blueprint object id>",
    "agent_identity_app_id": "<Agent Identity app id>",
    "agent_user_id": "<Agent User object id>",
    "agent_user_upn": "<Agent User UPN>",
    "cert_x5t_s256": "<x5t#S256 from `entraclaw thumbprint CERT`>",
    "cert_sha1": "<SHA-1 from `entraclaw thumbprint CERT`>",
    "key_ref": "file:<PEM path> | keystore:<entry> | cng:CurrentUser/<SHA-1> | tpm2:<TPM key file>",
    "key_provider": "tpm | software_ksp | pem",
    "scopes": "https://graph.microsoft.com/.default",
    "ca_bundle": "<path to a PEM CA bundle>",
    "proxy": "http://<proxy host>:<port> | direct",
}
