"""``AuthRuntime``: the shared services that transports and feature routers are given.

Features depend on this small surface instead of on ``CRUDAuth``, which keeps imports pointing
inward: only the composition root knows every part.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from starlette.requests import Request

from crudauth.audit.log import AuditLog
from crudauth.authentication import PasswordAuthenticator
from crudauth.clock import Clock
from crudauth.config import CookieConfig
from crudauth.hooks import AuthHooks, HookContext
from crudauth.http.origins import OriginPolicy
from crudauth.http.request import ProxyConfig, client_ip
from crudauth.identity.config import IdentityConfig
from crudauth.identity.repository import UserRepository
from crudauth.keys import KeyRing
from crudauth.passwords import PasswordHasher
from crudauth.policy import PasswordPolicy
from crudauth.ratelimit.lockout import DeviceTokens, LoginLockout
from crudauth.ratelimit.throttle import Throttles
from crudauth.storage.base import KeyValueStore
from crudauth.storage.database import DatabaseStore


@dataclass(frozen=True)
class AuthRuntime:
    """Everything a transport or feature needs, wired once by ``CRUDAuth``."""

    session_dependency: Callable[..., Any]
    repo: UserRepository
    identity: IdentityConfig
    keys: KeyRing
    clock: Clock
    hasher: PasswordHasher
    authenticator: PasswordAuthenticator
    password_policy: PasswordPolicy
    hooks: AuthHooks
    cookies: CookieConfig
    #: Single-use values: recovery tokens, OAuth state, MFA challenges, refresh families.
    tokens: KeyValueStore
    #: The login lockout shared by every route that checks a password.
    lockout: LoginLockout
    #: Per-action throttles (``rate_limits=`` merged over the defaults).
    throttles: Throttles
    #: Signed device tokens that exempt a known browser from its identifier's lock.
    devices: DeviceTokens
    proxies: ProxyConfig = field(default_factory=ProxyConfig)
    #: Origins allowed to send cookie-bearing unsafe requests besides the app's own host.
    origins: OriginPolicy = field(default_factory=OriginPolicy)
    #: A Redis client shared by every store that has no backend of its own (``redis_url=``
    #: or ``redis_client=`` on ``CRUDAuth``), or ``None``.
    redis_client: Any = None
    #: The SQL store (``database_store=`` on ``CRUDAuth``), or ``None``.
    database_store: DatabaseStore | None = None
    #: Audit events to the logging sink and ``CRUDAuth(audit=...)``.
    audit: AuditLog = field(default_factory=AuditLog)

    def client_ip(self, request: Request) -> str | None:
        return client_ip(request, self.proxies)

    def hook_context(
        self, request: Request | None, transport: str | None, session_handle: str | None = None
    ) -> HookContext:
        if request is None:
            return HookContext(transport=transport, session_handle=session_handle)
        return HookContext(
            ip_address=self.client_ip(request),
            user_agent=request.headers.get("user-agent"),
            transport=transport,
            request=request,
            session_handle=session_handle,
        )
