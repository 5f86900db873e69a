"""``Emulator``: the local Entra + Graph, started in-process (tests, demo) or by ``entraclaw emulator serve``.

With a ``state_file`` the emulator owns that file while it serves (an OS lock on
``<state>.lock``), saves every Graph write to it before answering, keeps its CA
certificate at the stable path ``<state>.ca.pem`` and, once ``admin`` is asked
for, the provisioner app's key and certificate at ``<state>.admin-key.pem`` /
``<state>.admin-cert.pem`` (owner-only).
"""

from __future__ import annotations

import shutil
import tempfile
import threading
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any

import requests
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from entraclaw.auth.certgen import generate_rsa_key, private_key_to_pem, self_signed_certificate
from entraclaw.emulator.control import handle_control
from entraclaw.emulator.faults import FaultInjector
from entraclaw.emulator.graph import GraphService
from entraclaw.emulator.issuer import TokenIssuer
from entraclaw.emulator.realm import Realm
from entraclaw.emulator.server import EmulatorHTTPServer
from entraclaw.emulator.state import StateLock, file_error, load_state, save_state
from entraclaw.emulator.stats import Stats
from entraclaw.emulator.tenant import DEVICE_CODE_CLIENT_ID, GRAPH_RESOURCE, Application, KeyCredential, Tenant
from entraclaw.emulator.tls import CertificateAuthority
from entraclaw.emulator.token_service import TokenService
from entraclaw.emulator.workspace import SeededPeople, Workspace
from entraclaw.errors import ConfigurationError, EmulatorError
from entraclaw.platform.files import atomic_write

__all__ = ["ADMIN_APP_ROLES", "ADMIN_SCOPES", "DEFAULT_TOKEN_LIFETIME", "AdminIdentity", "Emulator"]

DEFAULT_TOKEN_LIFETIME = 3599

#: What the provisioner app holds: the Agent ID creation permissions the docs list, plus the app,
#: consent and role-assignment permissions setup needs. Not Directory.ReadWrite.All: Entra ignores
#: Agent ID permissions next to it (a documented known issue).
ADMIN_APP_ROLES = (
    "AgentIdentityBlueprint.Create",
    "AgentIdentityBlueprint.ReadWrite.All",
    "AgentIdentityBlueprint.AddRemoveCreds.All",
    "AgentIdentityBlueprintPrincipal.Create",
    "AgentIdentityBlueprintPrincipal.ReadWrite.All",
    "AgentIdentity.Create.All",
    "AgentIdentity.ReadWrite.All",
    "AgentIdUser.ReadWrite.All",
    "Application.ReadWrite.All",
    "AppRoleAssignment.ReadWrite.All",
    "DelegatedPermissionGrant.ReadWrite.All",
    "Domain.Read.All",
    # setup reads the tenant's app management policy to issue a certificate it allows
    "Policy.Read.All",
    "User.Read.All",
)
#: Delegated scopes consented for the device-code client, so the admin's ``.default`` token carries them.
ADMIN_SCOPES = (*(r for r in ADMIN_APP_ROLES), "User.Read")
ADMIN_ROLES = ("Global Administrator", "Agent ID Administrator")


@dataclass(frozen=True)
class AdminIdentity:
    """How a second process authenticates as the tenant's admin.

    ``app_id`` + ``cert_path``/``key_path``: the provisioner app (client credentials with a
    certificate assertion). ``user_upn`` + ``client_id``: the device-code flow of the seeded
    admin user through a public client.
    """

    app_id: str
    cert_path: str
    key_path: str
    cert: x509.Certificate
    key: rsa.RSAPrivateKey
    user_upn: str
    user_id: str
    client_id: str = DEVICE_CODE_CLIENT_ID

    def __repr__(self) -> str:
        return f"AdminIdentity(app_id={self.app_id!r}, cert_path={self.cert_path!r}, user_upn={self.user_upn!r})"


def _tenant_guid(tenant_id: str) -> str:
    try:
        return str(uuid.UUID(tenant_id))
    except (TypeError, ValueError, AttributeError):
        raise EmulatorError(
            f"Tenant id {tenant_id!r} is not a GUID.",
            remedy="Pass a tenant GUID (for example one from `python -c 'import uuid; print(uuid.uuid4())'`) "
            "or leave it out for a random one.",
            tenant_id=tenant_id,
        ) from None


class Emulator:
    """A real HTTPS Entra token endpoint + Graph subset on loopback.

    ``Emulator(state_file=None, host="127.0.0.1", port=0, tenant_id=None)``;
    ``start()`` returns self, ``stop()`` is idempotent, and the object is a
    context manager. With a ``state_file`` that exists, the tenant, CA and
    signing key are loaded from it; ``stop()`` saves back to it.
    """

    def __init__(
        self,
        state_file: str | Path | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
        tenant_id: str | None = None,
        *,
        token_lifetime: int | None = None,
        propagation_delay: float = 0.0,
        permission_delay: float = 0.0,
    ) -> None:
        self.state_file = Path(state_file) if state_file is not None else None
        self._admin_info: dict[str, Any] | None = None
        self._workspace_data: dict[str, Any] = {}
        if tenant_id is not None:
            tenant_id = _tenant_guid(tenant_id)
        self.host = host
        self._requested_port = port
        self._saved_port = 0
        if self.state_file is not None and self.state_file.exists():
            data = load_state(self.state_file)
            try:
                self._load(data)
            except (KeyError, TypeError, ValueError) as exc:
                raise EmulatorError(
                    f"Emulator state file {self.state_file} is damaged ({type(exc).__name__}: {exc}).",
                    remedy="Delete the file to start a fresh tenant.",
                    path=str(self.state_file),
                ) from exc
            if tenant_id is not None and data.get("tenant_id") is None:
                self.tenant_id = tenant_id
                self.tenant = Tenant.from_dict(self.tenant_id, data["tenant"])
            if tenant_id is not None and tenant_id != self.tenant_id:
                raise EmulatorError(
                    f"Tenant {tenant_id} was requested but state file {self.state_file} holds tenant {self.tenant_id}.",
                    remedy="Drop the tenant id argument, or use another state file.",
                    path=str(self.state_file),
                )
        else:
            self.tenant_id = tenant_id or str(uuid.uuid4())
            self._ca = CertificateAuthority.generate()
            self._issuer = TokenIssuer.generate()
            self.tenant = Tenant(self.tenant_id)
            self._token_lifetime = DEFAULT_TOKEN_LIFETIME
        if token_lifetime is not None:
            if not 60 <= token_lifetime <= 86400:
                raise EmulatorError(
                    f"token_lifetime {token_lifetime} is outside 60..86400 seconds.",
                    remedy="Pass a lifetime in seconds between 60 and 86400.",
                )
            self._token_lifetime = token_lifetime
        self.faults = FaultInjector()
        self.stats = Stats()
        self.clock_offset = 0.0
        self.tenant.clock = self.clock
        self.propagation_delay = propagation_delay
        self.permission_delay = permission_delay
        self.token_service = TokenService(self.tenant, self._issuer, self._realm, self.clock, self._token_lifetime)
        self.workspace = Workspace(self.tenant, self.clock)
        if self._workspace_data:
            self.workspace.load(self._workspace_data)
        self.graph_service = GraphService(
            self.tenant, self._issuer, self._realm, self.clock, self._after_write, workspace=self.workspace
        )
        self._server: EmulatorHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self._tmpdir: str | None = None
        self._ca_path: str | None = None
        self._lock = threading.Lock()
        self._save_lock = threading.Lock()
        self._admin: AdminIdentity | None = None
        self._admin_dir: str | None = None
        self._state_lock = StateLock(self.state_file) if self.state_file is not None else None

    def _load(self, data: dict[str, Any]) -> None:
        self.tenant_id = str(uuid.UUID(data["tenant_id"])) if data.get("tenant_id") else str(uuid.uuid4())
        ca, signing = data.get("ca"), data.get("signing")
        self._ca = (
            CertificateAuthority.from_pem(ca["cert_pem"].encode(), ca["key_pem"].encode())
            if ca
            else CertificateAuthority.generate()
        )
        self._issuer = (
            TokenIssuer.from_pem(signing["key_pem"].encode(), signing["cert_pem"].encode())
            if signing
            else TokenIssuer.generate()
        )
        self.tenant = Tenant.from_dict(self.tenant_id, data["tenant"])
        self._token_lifetime = int(data.get("token_lifetime", DEFAULT_TOKEN_LIFETIME))
        port = data.get("port")
        self._saved_port = port if isinstance(port, int) and 0 < port < 65536 else 0
        workspace = data.get("workspace")
        self._workspace_data = dict(workspace) if isinstance(workspace, dict) else {}
        admin = data.get("admin")
        self._admin_info = dict(admin) if isinstance(admin, dict) else None

    # --- time -------------------------------------------------------------------------

    def clock(self) -> float:
        """The emulator's notion of now; tests move it with advance_clock() instead of sleeping."""
        return time.time() + self.clock_offset

    def advance_clock(self, seconds: float) -> None:
        self.clock_offset += seconds

    @property
    def token_lifetime(self) -> int:
        return self._token_lifetime

    @property
    def propagation_delay(self) -> float:
        """Seconds (emulator clock) before an object created over Graph can be used or read."""
        return self.tenant.propagation_delay

    @propagation_delay.setter
    def propagation_delay(self, seconds: float) -> None:
        if not 0 <= seconds <= 3600:
            raise EmulatorError(
                f"propagation_delay {seconds} is outside 0..3600 seconds.",
                remedy="Pass a delay in seconds between 0 and 3600 (0 turns it off).",
            )
        self.tenant.propagation_delay = float(seconds)

    @property
    def permission_delay(self) -> float:
        """Seconds (emulator clock) before a consent or app-role change made over Graph reaches tokens."""
        return self.tenant.permission_delay

    @permission_delay.setter
    def permission_delay(self, seconds: float) -> None:
        if not 0 <= seconds <= 3600:
            raise EmulatorError(
                f"permission_delay {seconds} is outside 0..3600 seconds.",
                remedy="Pass a delay in seconds between 0 and 3600 (0 turns it off).",
            )
        self.tenant.permission_delay = float(seconds)

    @property
    def auto_approve(self) -> bool:
        """True when device codes are approved for the admin user as soon as they are issued."""
        return self.token_service.auto_approve_upn is not None

    @auto_approve.setter
    def auto_approve(self, value: bool) -> None:
        self.token_service.auto_approve_upn = self.admin.user_upn if value else None

    # --- lifecycle --------------------------------------------------------------------

    def start(self) -> Emulator:
        with self._lock:
            if self._server is not None:
                return self
            if self._state_lock is not None:
                self._state_lock.acquire()
            identity = self._ca.issue_server((self.host,))
            try:
                server = self._listen(identity.ssl_context())
            except OSError as exc:
                if self._state_lock is not None:
                    self._state_lock.release()
                raise EmulatorError(
                    f"Cannot listen on {self.host}:{self._requested_port}: {exc.strerror or exc}.",
                    remedy="Pick another --port (0 picks a free one) or stop what is using it.",
                    host=self.host,
                    port=self._requested_port,
                ) from exc
            self._tmpdir = tempfile.mkdtemp(prefix="entraclaw-emulator-")
            if self.state_file is not None:
                # Stable across restarts (same CA, same path), so clients configure it once.
                ca_path = self.state_file.with_name(self.state_file.name + ".ca.pem")
                try:
                    if not ca_path.exists() or ca_path.read_bytes() != self._ca.cert_pem:
                        atomic_write(ca_path, self._ca.cert_pem, private=True)
                except (OSError, ConfigurationError) as exc:
                    server.server_close()
                    if self._state_lock is not None:
                        self._state_lock.release()
                    raise file_error("write the CA bundle", ca_path, exc) from exc
            else:
                ca_path = Path(self._tmpdir) / "emulator-ca.pem"
                ca_path.write_bytes(self._ca.cert_pem)
            self._ca_path = str(ca_path)
            self._saved_port = int(server.server_address[1])
            self._server = server
            self._thread = server.serve_in_thread()
        return self

    def _listen(self, context: Any) -> EmulatorHTTPServer:
        # A restarted emulator keeps the port its state file recorded: the device configs that setup
        # wrote name the authority and Graph by URL, and a new random port would strand them.
        if self._requested_port == 0 and self._saved_port:
            try:
                return EmulatorHTTPServer((self.host, self._saved_port), context, self)
            except OSError:
                pass  # taken by something else meanwhile: a free port beats not starting at all
        return EmulatorHTTPServer((self.host, self._requested_port), context, self)

    def stop(self) -> None:
        with self._lock:
            server, thread = self._server, self._thread
            self._server = self._thread = None
            if server is not None:
                server.shutdown()
                server.close_connections()
                server.server_close()
            if thread is not None:
                thread.join(timeout=5)
            if self._tmpdir is not None:
                shutil.rmtree(self._tmpdir, ignore_errors=True)
                self._tmpdir = self._ca_path = None
            if self._admin_dir is not None:
                shutil.rmtree(self._admin_dir, ignore_errors=True)
                self._admin_dir = None
                self._admin = None
        if server is not None and self.state_file is not None:
            try:
                self.save_state()
            finally:
                if self._state_lock is not None:
                    self._state_lock.release()

    def __enter__(self) -> Emulator:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    @property
    def running(self) -> bool:
        return self._server is not None

    # --- addresses --------------------------------------------------------------------

    @property
    def port(self) -> int:
        server = self._server
        if server is None:
            raise EmulatorError("The emulator is not running, so it has no port.", remedy="Call emu.start() first.")
        return int(server.server_address[1])

    @property
    def base_url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"https://{host}:{self.port}"

    @property
    def authority(self) -> str:
        return f"{self.base_url}/{self.tenant_id}"

    @property
    def token_endpoint(self) -> str:
        return f"{self.base_url}/{self.tenant_id}/oauth2/v2.0/token"

    @property
    def graph_url(self) -> str:
        return f"{self.base_url}/v1.0"

    @property
    def issuer(self) -> str:
        return f"{self.base_url}/{self.tenant_id}/v2.0"

    @property
    def jwks_uri(self) -> str:
        return f"{self.base_url}/{self.tenant_id}/discovery/v2.0/keys"

    def _realm(self) -> Realm:
        return Realm(self.base_url, self.tenant_id)

    # --- trust ------------------------------------------------------------------------

    @property
    def ca_cert_pem(self) -> bytes:
        return self._ca.cert_pem

    @property
    def ca_bundle_path(self) -> str:
        if self._ca_path is None:
            raise EmulatorError(
                "The emulator is not running; its CA file exists only while it runs.",
                remedy="Call emu.start() first, or write emu.ca_cert_pem to a file yourself.",
            )
        return self._ca_path

    def session(self) -> requests.Session:
        """A requests session that trusts only this emulator's CA (and ignores REQUESTS_CA_BUNDLE)."""
        session = requests.Session()
        session.trust_env = False
        session.verify = self.ca_bundle_path
        return session

    @property
    def signing_public_key(self) -> rsa.RSAPublicKey:
        return self._issuer.public_key

    @property
    def signing_key_id(self) -> str:
        return self._issuer.kid

    # --- documents served by the routes ----------------------------------------------

    def resolve_tenant(self, name: str) -> str | None:
        """The tenant id Entra's discovery answers for ``name``: a tenant id, a verified domain of this
        tenant or of the seeded external tenant, or organizations/common (this tenant); else None."""
        name = name.lower()
        if name in (self.tenant_id, "organizations", "common"):
            return self.tenant_id
        if any(d.name == name and d.is_verified for d in self.tenant.domains):
            return self.tenant_id
        external = self.workspace.external_tenant(name)
        return external.tenant_id if external is not None else None

    def discovery_document(self, tenant: str) -> dict[str, Any] | None:
        tid_found = self.resolve_tenant(tenant)
        if tid_found is None:
            return None
        base, tid = self.base_url, tid_found
        return {
            "token_endpoint": f"{base}/{tid}/oauth2/v2.0/token",
            "token_endpoint_auth_methods_supported": ["client_secret_post", "private_key_jwt", "client_secret_basic"],
            "jwks_uri": f"{base}/{tid}/discovery/v2.0/keys",
            "response_modes_supported": ["query", "fragment", "form_post"],
            "subject_types_supported": ["pairwise"],
            "id_token_signing_alg_values_supported": ["RS256"],
            "response_types_supported": ["code", "id_token", "code id_token", "id_token token"],
            "scopes_supported": ["openid", "profile", "email", "offline_access"],
            "issuer": f"{base}/{tid}/v2.0",
            "request_uri_parameter_supported": False,
            "userinfo_endpoint": f"{base}/oidc/userinfo",
            "authorization_endpoint": f"{base}/{tid}/oauth2/v2.0/authorize",
            "device_authorization_endpoint": f"{base}/{tid}/oauth2/v2.0/devicecode",
            "http_logout_supported": True,
            "frontchannel_logout_supported": True,
            "end_session_endpoint": f"{base}/{tid}/oauth2/v2.0/logout",
            "claims_supported": [
                "sub",
                "iss",
                "cloud_instance_name",
                "cloud_instance_host_name",
                "cloud_graph_host_name",
                "msgraph_host",
                "aud",
                "exp",
                "iat",
                "auth_time",
                "acr",
                "nonce",
                "preferred_username",
                "name",
                "tid",
                "ver",
                "at_hash",
                "c_hash",
                "email",
            ],
            "kerberos_endpoint": f"{base}/{tid}/kerberos",
            "tenant_region_scope": None,
            "cloud_instance_name": "entraclaw.emulator",
            "cloud_graph_host_name": base.removeprefix("https://"),
            "msgraph_host": base.removeprefix("https://"),
            "rbac_url": base,
        }

    def jwks_document(self, tenant: str) -> dict[str, Any] | None:
        if self.resolve_tenant(tenant) != self.tenant_id:
            return None
        return self._issuer.jwks(self.issuer)

    # --- the people the agent's tools talk to -------------------------------------------

    @property
    def people(self) -> SeededPeople:
        """Seeded colleagues, a #EXT# guest and a second tenant with a federated user (made on first use)."""
        with self._lock:
            before = len(self.tenant.people)
            people = self.workspace.seed()
            made = len(self.tenant.people) != before
        if made and self.state_file is not None and self.running:
            self.save_state()
        return people

    def control(self, method: str, path: str, body: bytes) -> tuple[int, Any]:
        """One ``/emulator/...`` control request (:mod:`entraclaw.emulator.control`)."""
        status, payload = handle_control(self, method, path, body)
        if method != "GET" and 200 <= status < 300:
            self._after_write()
        return status, payload

    # --- the admin a second process signs in as ----------------------------------------

    @property
    def admin(self) -> AdminIdentity:
        """The provisioner app (certificate files) and the device-code admin user, made on first use."""
        made = False
        with self._lock:
            if self._admin is None:
                self._admin = self._provision_admin()
                self.token_service.admin_upn = self._admin.user_upn
                made = True
            admin = self._admin
        if made and self.state_file is not None:
            self.save_state()
        return admin

    def _admin_paths(self) -> tuple[Path, Path]:
        if self.state_file is not None:
            base = self.state_file
            return base.with_name(base.name + ".admin-key.pem"), base.with_name(base.name + ".admin-cert.pem")
        if self._admin_dir is None:
            self._admin_dir = tempfile.mkdtemp(prefix="entraclaw-emulator-admin-")
        return Path(self._admin_dir) / "admin-key.pem", Path(self._admin_dir) / "admin-cert.pem"

    def _provision_admin(self) -> AdminIdentity:
        tenant = self.tenant
        info = self._admin_info or {}
        app: Application | None = tenant.application(str(info.get("app_id", ""))) if info.get("app_id") else None
        if app is None:
            app = tenant.add_application("entraclaw emulator provisioner")
            tenant.grant_app_roles(app.app_id, GRAPH_RESOURCE, ADMIN_APP_ROLES)
        person = tenant.person(str(info.get("user_id", ""))) if info.get("user_id") else None
        if person is None:
            person = tenant.add_person(f"admin@{tenant.default_domain}", "Emulator Admin", roles=ADMIN_ROLES)
        if tenant.application(DEVICE_CODE_CLIENT_ID) is None:
            tenant.add_application(
                "Microsoft Graph Command Line Tools", app_id=DEVICE_CODE_CLIENT_ID, public_client=True
            )
            tenant.grant_consent(DEVICE_CODE_CLIENT_ID, GRAPH_RESOURCE, ADMIN_SCOPES)
        key_path, cert_path = self._admin_paths()
        key, cert = self._load_admin_key(key_path, cert_path, app)
        if key is None or cert is None:
            key = generate_rsa_key()
            cert = self_signed_certificate(key, "entraclaw emulator provisioner", days=3650)
            tenant.set_key_credentials(app.object_id, [KeyCredential.from_certificate(cert)])
            try:
                atomic_write(key_path, private_key_to_pem(key), private=True)
                atomic_write(cert_path, cert.public_bytes(serialization.Encoding.PEM), private=True)
            except (OSError, ConfigurationError) as exc:
                raise file_error("write the admin key files", key_path, exc, shown=f"{key_path} / {cert_path}") from exc
        self._admin_info = {"app_id": app.app_id, "user_id": person.object_id}
        return AdminIdentity(app.app_id, str(cert_path), str(key_path), cert, key, person.upn, person.object_id)

    def _load_admin_key(
        self, key_path: Path, cert_path: Path, app: Application
    ) -> tuple[rsa.RSAPrivateKey | None, x509.Certificate | None]:
        """The saved admin key and certificate, if both exist, match and are still registered on the app."""
        try:
            key = serialization.load_pem_private_key(key_path.read_bytes(), password=None)
            cert = x509.load_pem_x509_certificate(cert_path.read_bytes())
        except (OSError, ValueError, TypeError):
            return None, None
        public = cert.public_key()
        if (
            not isinstance(key, rsa.RSAPrivateKey)
            or not isinstance(public, rsa.RSAPublicKey)
            or key.public_key().public_numbers() != public.public_numbers()
        ):
            return None, None
        registered = KeyCredential.from_certificate(cert)
        if app.find_key(x5t_s256=registered.x5t_s256, x5t=None) is None:
            return None, None
        return key, cert

    # --- persistence ------------------------------------------------------------------

    def _after_write(self) -> None:
        if self.state_file is not None:
            self.save_state()

    def save_state(self, path: str | Path | None = None) -> Path:
        target = Path(path) if path is not None else self.state_file
        if target is None:
            raise EmulatorError(
                "No state file to save to.", remedy="Pass path= to save_state() or state_file= to Emulator()."
            )
        # Writers on several request threads: one save at a time, and the snapshot is taken inside
        # the lock, so a slower save can never put an older tenant on disk after a newer one.
        with self._save_lock:
            document: dict[str, Any] = {
                "tenant_id": self.tenant_id,
                "token_lifetime": self._token_lifetime,
                "ca": {"cert_pem": self._ca.cert_pem.decode(), "key_pem": self._ca.key_pem.decode()},
                "signing": {"cert_pem": self._issuer.cert_pem.decode(), "key_pem": self._issuer.key_pem.decode()},
                "tenant": self.tenant.to_dict(),
                "workspace": self.workspace.to_dict(),
            }
            if self._admin_info is not None:
                document["admin"] = dict(self._admin_info)
            if self._saved_port:
                document["port"] = self._saved_port
            save_state(target, document)
        return target

    def __repr__(self) -> str:
        where = self.base_url if self.running else "stopped"
        return f"<Emulator tenant={self.tenant_id} {where}>"
