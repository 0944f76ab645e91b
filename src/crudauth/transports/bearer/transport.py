"""``BearerTransport``: JWT access tokens in ``Authorization: Bearer``, rotating refresh tokens."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Literal

from fastapi import APIRouter
from sqlalchemy.ext.asyncio import AsyncSession
from starlette.requests import Request
from starlette.responses import Response

from crudauth.audit.log import Events
from crudauth.config import CookieConfig
from crudauth.errors import ConfigurationError
from crudauth.http.request import request_cookie
from crudauth.identity.repository import AuthRow
from crudauth.keys import Purpose, TokenShape
from crudauth.metrics import instruments
from crudauth.principal import Principal
from crudauth.runtime import AuthRuntime
from crudauth.transports.base import AuthContext, Issued, Transport
from crudauth.transports.bearer.access import AccessTokens
from crudauth.transports.bearer.claims import ClaimsEntries
from crudauth.transports.bearer.families import (
    FamilyStart,
    Outcome,
    Presented,
    RefreshFamilies,
)
from crudauth.transports.bearer.options import (
    check_names,
    check_refresh_cookie,
    granted_scopes,
    positive,
    public_keyset,
    refresh_cookie_writer,
    within,
)
from crudauth.transports.bearer.results import IssuedTokens, RefreshedTokens
from crudauth.transports.bearer.signing import Algorithm, hmac_keyset
from crudauth.transports.bearer.tokens import (
    MAX_TOKEN_BYTES,
    InvalidToken,
    TokenRules,
    TokenType,
    create_access_token,
    create_refresh_token,
    new_token_id,
    verify_token,
)
from crudauth.transports.shared import Standing, build_principal, snapshot_principal, standing

RefreshMode = Literal["cookie", "body"]
DAY = 86400
TOKEN_TYPE = "bearer"  # noqa: S105 - the OAuth 2.0 token_type, not a secret
REFRESH_SHAPE = TokenShape(max_length=MAX_TOKEN_BYTES, parts=3)  # a compact JWS


class BearerTransport(Transport):
    """Short-lived JWT access tokens and rotating, family-tracked refresh tokens."""

    name = "bearer"
    sign_in_path = "/token"

    def __init__(
        self,
        *,
        access_ttl: float = 900,
        refresh_ttl_days: float = 30,
        refresh: RefreshMode = "cookie",
        default_scopes: Iterable[str] | None = None,
        grantable_scopes: Iterable[str] | None = None,
        refresh_cookie_name: str = "refresh_token",
        refresh_cookie_path: str | None = None,
        cookies: CookieConfig | None = None,
        issuer: str = "crudauth",
        audience: str = "crudauth",
        refresh_idle_days: float = 14,
        reuse_grace_seconds: float = 0,
        leeway_seconds: float = 10,
        algorithm: Algorithm = "HS256",
        signing_key: Any = None,
        verification_keys: Sequence[Any] = (),
    ) -> None:
        self.access_ttl = positive(access_ttl, "access_ttl", maximum=DAY)
        self.refresh_ttl = positive(refresh_ttl_days, "refresh_ttl_days", maximum=365) * DAY
        # An idle window longer than the absolute one changes nothing, so it is capped (the
        # reference's BearerTransport(refresh_ttl_days=7) must keep working).
        idle = positive(refresh_idle_days, "refresh_idle_days", maximum=365) * DAY
        self.refresh_idle = min(idle, self.refresh_ttl)
        self.reuse_grace = within(reuse_grace_seconds, "reuse_grace_seconds", 0, 60)
        self.leeway = within(leeway_seconds, "leeway_seconds", 0, 30)
        if refresh not in ("cookie", "body"):
            raise ConfigurationError(f"refresh={refresh!r}: use 'cookie' or 'body'")
        self.refresh_mode: RefreshMode = refresh
        self.default_scopes, self.grantable_scopes = granted_scopes(
            default_scopes, grantable_scopes
        )
        check_refresh_cookie(refresh_cookie_name, refresh_cookie_path, cookies)
        check_names(issuer, audience)
        self._public_keys = public_keyset(algorithm, signing_key, verification_keys)
        self.algorithm: Algorithm = algorithm
        self.refresh_cookie_name = refresh_cookie_name
        self.refresh_cookie_path = refresh_cookie_path
        self._cookie_config = cookies
        self.rules = TokenRules(issuer=issuer, audience=audience, leeway=self.leeway)
        self.sibling_session = False

    # -- wiring --------------------------------------------------------------------------------

    def bind(self, runtime: AuthRuntime) -> None:
        super().bind(runtime)
        self.cookies = self._cookie_config or runtime.cookies
        self.refresh_cookie = refresh_cookie_writer(
            self.cookies, self.refresh_cookie_name, self.refresh_cookie_path, self.refresh_mode
        )
        self.access_keys = self._public_keys or hmac_keyset(runtime.keys, Purpose.ACCESS_TOKEN)
        # Refresh tokens are only ever read by this server: always a secret key of their own.
        self.refresh_keys = hmac_keyset(runtime.keys, Purpose.REFRESH_TOKEN)
        self.access = AccessTokens(
            self.access_keys, self.rules, runtime.clock, self.grantable_scopes
        )
        self.families = RefreshFamilies(
            runtime.tokens, runtime.clock, grace_seconds=self.reuse_grace, leeway=self.leeway
        )
        self.claims_entries = ClaimsEntries(
            runtime, self.name, ttl=self.access_ttl + self.leeway + 1
        )

    def attach(self, siblings: Sequence[Transport]) -> None:
        self.sibling_session = any(t.serves_browser_logout for t in siblings)

    @property
    def sign_in_sets_cookies(self) -> bool:
        """In cookie mode, ``/token`` sets the refresh cookie."""
        return self.refresh_mode == "cookie"

    def router(self) -> APIRouter:
        from crudauth.transports.bearer.routes import build_bearer_router

        return build_bearer_router(self)

    def jwks(self) -> dict[str, list[dict[str, str]]]:
        """The public verification keys (an empty set with HS256, whose keys are secret)."""
        return self.access_keys.jwks()

    # -- minting -------------------------------------------------------------------------------

    def clamp_scopes(self, requested: Iterable[str] | None) -> frozenset[str]:
        """The requested scopes (or the defaults) that may be granted."""
        wanted = frozenset(requested) if requested else self.default_scopes
        return wanted & self.grantable_scopes

    def _identity(self, user: Any) -> tuple[str, int]:
        repo = self.runtime.repo
        return str(repo.user_id(user)), int(repo.value(user, "token_version", 0) or 0)

    def access_token(self, user: Any, scopes: Iterable[str] = ()) -> str:
        """A signed access token for ``user`` carrying ``scopes`` (already clamped)."""
        subject, version = self._identity(user)
        return create_access_token(
            self.access_keys,
            self.rules,
            subject=subject,
            version=version,
            scopes=scopes,
            now=self.runtime.clock.now(),
            ttl=self.access_ttl,
        )

    def _member(
        self,
        user: Any,
        scopes: Iterable[str],
        family: str,
        generation: int,
        started: float,
        jti: str,
    ) -> tuple[str, float]:
        now = self.runtime.clock.now()
        expires_at = min(now + self.refresh_idle, started + self.refresh_ttl)
        subject, version = self._identity(user)
        token = create_refresh_token(
            self.refresh_keys,
            self.rules,
            subject=subject,
            version=version,
            scopes=scopes,
            now=now,
            expires_at=expires_at,
            family=family,
            generation=generation,
            family_started=started,
            jti=jti,
        )
        return token, expires_at

    def issue_tokens(
        self, user: Any, *, scopes: Iterable[str] | None = None, response: Response | None = None
    ) -> IssuedTokens:
        """Mint an access token and the first refresh token of a new family.

        The family is recorded in the token store by a task on the running loop: ``await``
        the result to wait for it (a store error is raised there). Until it is recorded, and
        for good if it never is (no running loop, the store down), the refresh token is
        refused; the access token works at once. With ``response`` in cookie mode, the refresh
        token goes into the HttpOnly cookie and is left out of the returned dict.
        """
        tokens, start = self._mint(user, scopes, response)
        tokens.recording = self.families.start_soon(start)
        return tokens

    def _mint(
        self, user: Any, scopes: Iterable[str] | None, response: Response | None
    ) -> tuple[IssuedTokens, FamilyStart]:
        granted = self.clamp_scopes(scopes)
        started = int(self.runtime.clock.now())
        family, jti = new_token_id(), new_token_id()
        refresh, expires_at = self._member(user, granted, family, 0, started, jti)
        result = IssuedTokens(
            access_token=self.access_token(user, granted),
            token_type=TOKEN_TYPE,
            refresh_token=refresh,
        )
        if response is not None and self.refresh_mode == "cookie":
            self.set_refresh_cookie(response, result.pop("refresh_token"), expires_at)
        return result, FamilyStart(family, jti, expires_at)

    # -- requests ------------------------------------------------------------------------------

    async def authenticate(self, request: Request, ctx: AuthContext) -> Principal | None:
        grant = self.access.read(request)
        if grant is None:
            return None
        user, row = await self._live_user(ctx.db, grant.subject, grant.version)
        return build_principal(
            ctx.runtime, user, self.name, grant.metadata(), scopes=grant.scopes, row=row
        )

    # -- load_user=False: a per-user entry in the token store (see claims.py) ---------------

    async def authenticate_claims(self, request: Request) -> Principal | None:
        """``current_user(load_user=False)``: one token-store GET, no SQL in the steady state.

        ``Principal.user`` is ``None``. Rejected at once: a token whose version is below the
        user's, a deactivated user, and everything after ``revoke_user``.
        """
        grant = self.access.read(request)
        if grant is None:
            return None
        entry = await self.claims_entries.get(grant.subject, stale=False)
        verdict = standing(entry["active"], entry["ver"], grant.version)
        if verdict is Standing.AHEAD:
            # Newer than the entry: the version moved on without the library (say, SQL).
            entry = await self.claims_entries.get(grant.subject, stale=True)
            verdict = standing(entry["active"], entry["ver"], grant.version)
        if verdict is not Standing.CURRENT:
            raise InvalidToken("account disabled or credentials changed")
        return snapshot_principal(
            self.runtime.repo.coerce_id(grant.subject),  # the same coercion as get()
            self.name,
            entry,
            grant.metadata(),
            grant.scopes,
        )

    async def revoke_user(self, user_id: Any, *, keep: str | None = None) -> int:
        """Make ``load_user=False`` re-read ``user_id`` from the database from now on.

        Call it after committing a token_version bump or a deactivation: the tokens and
        refresh families end with that commit (every full check and every refresh compares
        the epoch); what is left is the claims entry, which is overwritten here. The tombstone
        lives one access-token lifetime, after which every token issued before it has expired.
        ``keep`` names a session; no bearer token is kept.
        """
        await self.claims_entries.revoke(user_id)
        return 1

    async def _live_user(self, db: AsyncSession, subject: str, version: int) -> tuple[Any, AuthRow]:
        """The active user a token names, still at the token's version, with its row facts;
        else ``InvalidToken``."""
        repo = self.runtime.repo
        user = await repo.get(db, subject)
        if user is None:
            raise InvalidToken("account gone")
        row = repo.auth_row(user)
        if standing(row.is_active, row.token_version, version) is not Standing.CURRENT:
            raise InvalidToken("account disabled or credentials changed")
        return user, row

    async def issue_credential(
        self, request: Request, response: Response, user: Any, options: Mapping[str, Any]
    ) -> Issued:
        """Mint a pair for ``user`` (the refresh token in its cookie in cookie mode).

        Nothing to withdraw: both tokens carry the epoch, and every use compares it with the
        account's, so a credential change that commits during the sign-in refuses them."""
        tokens, start = self._mint(user, options.get("scopes"), response)
        # Recorded before the answer leaves: a family without a record is dead.
        await self.families.start(start)
        return Issued(dict(tokens))

    async def complete_login(
        self, request: Request, response: Response, user: Any, options: Mapping[str, Any]
    ) -> dict[str, Any]:
        """Mint and record a pair for ``user``; return the login body."""
        return (await self.issue_credential(request, response, user, options)).body

    def read_refresh(self, request: Request, body_token: str | None = None) -> str | None:
        """The presented refresh token: the cookie in cookie mode, else the JSON body (only)."""
        if self.refresh_mode == "cookie":
            return request_cookie(request.scope, self.refresh_cookie_name) or None
        return body_token or None

    def _refresh_claims(self, token: str, now: float) -> dict[str, Any]:
        """A refresh token's verified claims; its shape is checked before any decoding."""
        if not REFRESH_SHAPE.check(token):
            raise InvalidToken("malformed refresh token")
        return verify_token(token, self.refresh_keys, TokenType.REFRESH, rules=self.rules, now=now)

    async def refresh(
        self, db: AsyncSession, token: str, request: Request | None = None
    ) -> RefreshedTokens:
        """Rotate ``token`` into a new pair, or raise ``InvalidToken``.

        A spent token revokes its whole family. A token-version bump (password change, reset,
        sign-out everywhere) or a disabled account refuses the refresh outright.
        """
        runtime = self.runtime
        claims = self._refresh_claims(token, runtime.clock.now())
        user, _ = await self._live_user(db, claims["sub"], claims["ver"])
        scopes = frozenset(claims["scopes"]) & self.grantable_scopes
        started = float(claims["fst"])
        jti = new_token_id()
        new_token, expires_at = self._member(
            user, scopes, claims["fam"], claims["gen"] + 1, started, jti
        )
        outcome = await self.families.rotate(
            Presented(claims["fam"], claims["jti"], claims["sub"]),
            new_jti=jti,
            new_expires_at=expires_at,
            family_ends_at=started + self.refresh_ttl,
        )
        if outcome is Outcome.REUSED:
            context = runtime.hook_context(request, self.name)
            runtime.audit.emit(
                Events.REFRESH_REUSE_DETECTED, context, user_id=claims["sub"], actor="system"
            )
            instruments().refresh_reuse.add(1)
            await runtime.hooks.fire(
                "on_refresh_reuse", runtime.repo.to_dict(user), request=request, context=context
            )
        if outcome is not Outcome.ROTATED:
            raise InvalidToken(f"refresh refused: {outcome.value}")
        tokens = IssuedTokens(
            access_token=self.access_token(user, scopes),
            token_type=TOKEN_TYPE,
            refresh_token=new_token,
        )
        return RefreshedTokens(user, tokens, expires_at)

    async def end_sign_in(self, request: Request) -> None:
        """A browser signing out of its session also loses its refresh-token family."""
        if self.refresh_mode != "cookie":
            return
        token = request_cookie(request.scope, self.refresh_cookie_name)
        if token:
            await self.revoke_refresh_token(token)

    async def revoke_refresh_token(self, token: str) -> bool:
        """Revoke the family of ``token`` (sign-out for this device).

        False if the token is invalid or expired: an expired member means its family has
        already lapsed (a family record never outlives its live member), so nothing is left.
        """
        runtime = self.runtime
        now = runtime.clock.now()
        try:
            claims = self._refresh_claims(token, now)
        except InvalidToken:
            return False
        await self.families.revoke(claims["fam"], float(claims["fst"]) + self.refresh_ttl)
        return True

    # -- cookies -------------------------------------------------------------------------------

    def set_refresh_cookie(self, response: Response, token: str, expires_at: float) -> None:
        max_age = max(1, int(expires_at - self.runtime.clock.now()))
        self.refresh_cookie.set(response, self.refresh_cookie_name, token, max_age=max_age)

    def clear_cookies(self, response: Response) -> None:
        if self.refresh_mode == "cookie":
            self.refresh_cookie.clear(response, self.refresh_cookie_name)
