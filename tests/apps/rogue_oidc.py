"""An OpenID Connect provider that lies in one chosen way per run, for the attack tests.

Honest by default: discovery, JWKS, an authorize endpoint that approves at once (remembering
the nonce and the PKCE challenge), a token endpoint that authenticates the client, refuses a
missing or wrong PKCE verifier and signs an RS256 ID token with joserfc, and userinfo. Set
`mode` to one `Tamper` value to make exactly one thing wrong; `rotate_key()` switches to a new
signing key (new `kid`) mid-test. Forgeries joserfc refuses to make (`alg: none`, HS256 keyed
with the public key) are assembled by hand, as an attacker would.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal, get_args
from urllib.parse import urlencode

from joserfc import jwt
from joserfc.jwk import RSAKey
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response
from starlette.routing import Route

Tamper = Literal[
    "honest",
    # the ID token's signature
    "alg_none",  # alg "none", empty signature
    "unknown_kid",  # RS256 by a key whose kid the JWKS does not list
    "wrong_key_same_kid",  # RS256 by another key, under the published kid
    "hs256_public_key",  # HS256 with the published key's PEM as the HMAC secret
    # the ID token's claims
    "wrong_iss",
    "wrong_aud",
    "multi_aud_no_azp",  # aud [client, other], no azp
    "multi_aud_wrong_azp",  # aud [client, other], azp other
    "expired",
    "iat_future",
    "nonce_missing",
    "nonce_mismatch",
    "wrong_at_hash",
    "email_unverified",  # email_verified false in the ID token and userinfo
    # the other endpoints
    "userinfo_sub_mismatch",
    "discovery_issuer_mismatch",  # discovery names an issuer other than its own URL
    "jwks_down",  # JWKS answers 500
    "token_500",
    "token_malformed_json",
    "token_slow",  # the token endpoint answers after `slow_seconds`
]
TAMPER_MODES: tuple[Tamper, ...] = get_args(Tamper)
CLIENT_ID = "rogue-client"
CLIENT_SECRET = "rogue-client-secret-0123456789abcdef"
OTHER_AUDIENCE = "another-client"
ATTACKER_ISSUER = "https://attacker.example"


@dataclass(frozen=True)
class RogueAccount:
    sub: str = "rogue-sub-0001"
    email: str = "victim@example.com"
    email_verified: bool = True
    name: str = "Rogue Account"


@dataclass
class _Pending:
    client_id: str
    redirect_uri: str
    nonce: str | None
    code_challenge: str
    scope: str


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def half_hash(value: str) -> str:
    """OIDC's at_hash for RS256: the left half of SHA-256, base64url."""
    return b64url(hashlib.sha256(value.encode("ascii")).digest()[:16])


def _segment(obj: dict[str, Any]) -> str:
    return b64url(json.dumps(obj, separators=(",", ":")).encode())


@dataclass
class RogueOIDC:
    """The app and its state; set `mode` (and the other knobs) from a test."""

    client_id: str = CLIENT_ID
    client_secret: str = CLIENT_SECRET
    account: RogueAccount = field(default_factory=RogueAccount)
    base_url: str = ""  # set once served; the honest issuer
    mode: Tamper = "honest"
    #: RFC 9207 `iss` in the authorization response: left out, the issuer, or another one.
    authorize_iss: Literal["omit", "correct", "wrong"] = "correct"
    slow_seconds: float = 5.0
    #: Where "now" comes from for iat/exp; point it at a test's frozen clock to match it.
    clock: Callable[[], float] = time.time
    signing_key: RSAKey = field(default_factory=lambda: RSAKey.generate_key(2048, auto_kid=True))
    published_keys: list[RSAKey] = field(default_factory=list)
    authorize_requests: list[dict[str, str]] = field(default_factory=list)
    token_requests: list[dict[str, str]] = field(default_factory=list)
    #: Every ID token the token endpoint handed out, tampered or not.
    id_tokens: list[str] = field(default_factory=list)
    _pending: dict[str, _Pending] = field(default_factory=dict, repr=False)
    _tokens: dict[str, _Pending] = field(default_factory=dict, repr=False)
    app: Starlette = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self._first_key = self.signing_key
        self._foreign_key: RSAKey | None = None  # never published; made once, when first needed
        self.published_keys = [self.signing_key]
        self.app = Starlette(
            routes=[
                Route("/.well-known/openid-configuration", self.discovery),
                Route("/jwks", self.jwks),
                Route("/authorize", self.authorize),
                Route("/token", self.token, methods=["POST"]),
                Route("/userinfo", self.userinfo, methods=["GET", "POST"]),
            ]
        )

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        await self.app(scope, receive, send)

    @property
    def issuer(self) -> str:
        """The issuer discovery announces (the serving URL unless the mode lies about it)."""
        return ATTACKER_ISSUER if self.mode == "discovery_issuer_mismatch" else self.base_url

    def reset(self) -> None:
        self.mode, self.authorize_iss, self.slow_seconds = "honest", "correct", 5.0
        self.account = RogueAccount()
        self.clock = time.time
        self.signing_key = self._first_key
        self.published_keys = [self._first_key]
        self.authorize_requests, self.token_requests, self.id_tokens = [], [], []
        self._pending, self._tokens = {}, {}

    def rotate_key(self, *, keep_old: bool = True) -> RSAKey:
        """Sign from now on with a new key (new kid), published at once."""
        self.signing_key = RSAKey.generate_key(2048, auto_kid=True)
        self.published_keys = [self.signing_key, *(self.published_keys if keep_old else [])]
        return self.signing_key

    # --- endpoints -------------------------------------------------------------------------

    async def discovery(self, request: Request) -> Response:
        base = self.base_url
        return JSONResponse(
            {
                "issuer": self.issuer,
                "authorization_endpoint": f"{base}/authorize",
                "token_endpoint": f"{base}/token",
                "userinfo_endpoint": f"{base}/userinfo",
                "jwks_uri": f"{base}/jwks",
                "response_types_supported": ["code"],
                "subject_types_supported": ["public"],
                "id_token_signing_alg_values_supported": ["RS256"],
                "scopes_supported": ["openid", "email", "profile"],
                "token_endpoint_auth_methods_supported": [
                    "client_secret_basic",
                    "client_secret_post",
                ],
                "code_challenge_methods_supported": ["S256"],
                "claims_supported": ["sub", "email", "email_verified", "name"],
                "authorization_response_iss_parameter_supported": self.authorize_iss != "omit",
            }
        )

    async def jwks(self, request: Request) -> Response:
        if self.mode == "jwks_down":
            return Response("JWKS unavailable", 500)
        keys = [
            {**k.as_dict(private=False), "use": "sig", "alg": "RS256"} for k in self.published_keys
        ]
        return JSONResponse({"keys": keys})

    async def authorize(self, request: Request) -> Response:
        params = dict(request.query_params)
        self.authorize_requests.append(params)
        redirect_uri = params.get("redirect_uri")
        if params.get("client_id") != self.client_id or not redirect_uri:
            return JSONResponse({"error": "invalid_client"}, 400)
        answer: dict[str, str]
        if not params.get("code_challenge") or params.get("code_challenge_method") != "S256":
            answer = {"error": "invalid_request", "error_description": "PKCE S256 is required"}
        else:
            code = secrets.token_urlsafe(24)
            self._pending[code] = _Pending(
                self.client_id,
                redirect_uri,
                params.get("nonce"),
                params["code_challenge"],
                params.get("scope", ""),
            )
            answer = {"code": code}
        if "state" in params:
            answer["state"] = params["state"]
        if self.authorize_iss != "omit":
            answer["iss"] = self.issuer if self.authorize_iss == "correct" else ATTACKER_ISSUER
        return RedirectResponse(f"{redirect_uri}?{urlencode(answer)}", 302)

    def _authenticated(self, request: Request, form: dict[str, str]) -> bool:
        header = request.headers.get("authorization", "")
        if header.lower().startswith("basic "):
            client_id, _, secret = base64.b64decode(header[6:]).decode().partition(":")
        else:
            client_id, secret = form.get("client_id", ""), form.get("client_secret", "")
        return client_id == self.client_id and hmac.compare_digest(secret, self.client_secret)

    async def token(self, request: Request) -> Response:
        form = {k: str(v) for k, v in (await request.form()).items()}
        self.token_requests.append({k: v for k, v in form.items() if k != "client_secret"})
        if self.mode == "token_500":
            return Response("<html>Internal Server Error</html>", 500, media_type="text/html")
        if self.mode == "token_malformed_json":
            return Response('{"access_token": "at-', 200, media_type="application/json")
        if self.mode == "token_slow":
            await asyncio.sleep(self.slow_seconds)
        if not self._authenticated(request, form):
            return JSONResponse({"error": "invalid_client"}, 401)
        pending = self._pending.pop(form.get("code", ""), None)  # single use
        if form.get("grant_type") != "authorization_code" or pending is None:
            return JSONResponse({"error": "invalid_grant"}, 400)
        if form.get("redirect_uri") != pending.redirect_uri:
            return JSONResponse(
                {"error": "invalid_grant", "error_description": "redirect_uri"}, 400
            )
        verifier = form.get("code_verifier", "")
        if not verifier or b64url(hashlib.sha256(verifier.encode()).digest()) != (
            pending.code_challenge
        ):
            return JSONResponse({"error": "invalid_grant", "error_description": "PKCE"}, 400)
        access_token = secrets.token_urlsafe(32)
        self._tokens[access_token] = pending
        id_token = self.id_token(pending, access_token)
        self.id_tokens.append(id_token)
        return JSONResponse(
            {
                "access_token": access_token,
                "token_type": "Bearer",
                "expires_in": 3600,
                "scope": pending.scope,
                "id_token": id_token,
            },
            headers={"Cache-Control": "no-store"},
        )

    async def userinfo(self, request: Request) -> Response:
        kind, _, token = request.headers.get("authorization", "").partition(" ")
        if kind.lower() != "bearer" or token not in self._tokens:
            return JSONResponse({"error": "invalid_token"}, 401)
        claims = self._profile()
        if self.mode == "userinfo_sub_mismatch":
            claims["sub"] = "someone-else-0002"
        return JSONResponse(claims)

    # --- the ID token ----------------------------------------------------------------------

    def _profile(self) -> dict[str, Any]:
        account = self.account
        verified = account.email_verified and self.mode != "email_unverified"
        return {
            "sub": account.sub,
            "email": account.email,
            "email_verified": verified,
            "name": account.name,
        }

    def claims(self, pending: _Pending, access_token: str) -> dict[str, Any]:
        """The ID token's claims, with the mode's lie in them."""
        now = int(self.clock())
        claims: dict[str, Any] = {
            "iss": self.issuer,
            "aud": pending.client_id,
            "iat": now,
            "exp": now + 300,
            "auth_time": now,
            "at_hash": half_hash(access_token),
            **self._profile(),
        }
        if pending.nonce is not None:
            claims["nonce"] = pending.nonce
        mode = self.mode
        if mode == "wrong_iss":
            claims["iss"] = ATTACKER_ISSUER
        elif mode == "wrong_aud":
            claims["aud"] = OTHER_AUDIENCE
        elif mode in ("multi_aud_no_azp", "multi_aud_wrong_azp"):
            claims["aud"] = [pending.client_id, OTHER_AUDIENCE]
            if mode == "multi_aud_wrong_azp":
                claims["azp"] = OTHER_AUDIENCE
        elif mode == "expired":
            claims["iat"], claims["exp"] = now - 7200, now - 3600
        elif mode == "iat_future":
            claims["iat"], claims["exp"] = now + 3600, now + 7200
        elif mode == "nonce_missing":
            claims.pop("nonce", None)
        elif mode == "nonce_mismatch":
            claims["nonce"] = secrets.token_urlsafe(16)
        elif mode == "wrong_at_hash":
            claims["at_hash"] = half_hash(secrets.token_urlsafe(32))
        return claims

    def id_token(self, pending: _Pending, access_token: str) -> str:
        claims = self.claims(pending, access_token)
        published = self.signing_key
        if self.mode == "alg_none":
            return f"{_segment({'alg': 'none', 'typ': 'JWT'})}.{_segment(claims)}."
        if self.mode == "hs256_public_key":
            header = {"alg": "HS256", "typ": "JWT", "kid": published.kid}
            signing_input = f"{_segment(header)}.{_segment(claims)}"
            secret = published.as_pem(private=False)
            mac = hmac.new(secret, signing_input.encode("ascii"), hashlib.sha256).digest()
            return f"{signing_input}.{b64url(mac)}"
        key, kid = published, published.kid
        if self.mode in ("unknown_kid", "wrong_key_same_kid"):
            if self._foreign_key is None:
                self._foreign_key = RSAKey.generate_key(2048, auto_kid=True)
            key = self._foreign_key
            kid = key.kid if self.mode == "unknown_kid" else published.kid
        return jwt.encode({"alg": "RS256", "kid": kid}, claims, key, algorithms=["RS256"])
