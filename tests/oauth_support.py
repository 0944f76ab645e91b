"""In-process OAuth providers for the OAuth tests: an OpenID Connect provider and a GitHub
stub, both ASGI apps reached through httpx's ASGI transport, with switches that make them
misbehave the ways the attack table needs."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
import time
from dataclasses import dataclass, field
from functools import cache
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import httpx
from fastapi import FastAPI, Form, Header, Request
from fastapi.responses import JSONResponse, RedirectResponse
from joserfc import jwt
from joserfc.jwk import OctKey, RSAKey

from crudauth.oauth import (
    GenericOIDCProvider,
    GitHubOAuthProvider,
    OAuthCredentials,
    identities_table,
)

BASE = "http://testserver"
ISSUER = "http://127.0.0.1:9/idp"
CLIENT_ID = "crudauth-test"
CLIENT_SECRET = "test-client-secret"


@cache
def signing_key(kid: str = "k1") -> RSAKey:
    return RSAKey.generate_key(2048, parameters={"kid": kid, "use": "sig", "alg": "RS256"})


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def s256(verifier: str) -> str:
    digest = hashlib.sha256(verifier.encode()).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


@dataclass
class OIDCProvider:
    """An OpenID Connect provider: whoever ``user`` is signs in and consents at once."""

    issuer: str = ISSUER
    user: dict[str, Any] = field(
        default_factory=lambda: {
            "sub": "user-1",
            "email": "ada@example.com",
            "email_verified": True,
            "name": "Ada Lovelace",
            "preferred_username": "ada",
        }
    )
    #: Claims merged into the next ID tokens (``None`` removes one).
    claims: dict[str, Any] = field(default_factory=dict)
    #: ``"none"`` (unsigned), ``"other-key"`` (a key not in the JWKS), ``"hs256"``.
    signing: str = "rs256"
    userinfo_sub: str | None = None
    discovery_issuer: str | None = None
    token_status: int = 200
    jwks_status: int = 200
    send_iss: bool = True
    codes: dict[str, dict[str, Any]] = field(default_factory=dict)
    #: The app's clock (a ``FrozenClock``), so that ``iat`` and ``exp`` agree with it.
    clock: Any = None
    token_calls: int = 0
    jwks_calls: int = 0

    def app(self) -> FastAPI:
        app = FastAPI()
        path = urlsplit(self.issuer).path.rstrip("/")
        base = self.issuer.rstrip("/")

        @app.get(f"{path}/.well-known/openid-configuration")
        async def discovery() -> dict[str, Any]:
            return {
                "issuer": self.discovery_issuer or self.issuer,
                "authorization_endpoint": f"{base}/auth",
                "token_endpoint": f"{base}/token",
                "userinfo_endpoint": f"{base}/me",
                "jwks_uri": f"{base}/jwks",
                "id_token_signing_alg_values_supported": ["RS256"],
                "authorization_response_iss_parameter_supported": self.send_iss,
            }

        @app.get(f"{path}/jwks")
        async def jwks() -> Any:
            self.jwks_calls += 1
            if self.jwks_status != 200:
                return JSONResponse({"error": "down"}, self.jwks_status)
            return {"keys": [signing_key("k1").as_dict(private=False)]}

        @app.get(f"{path}/auth")
        async def authorize(request: Request) -> Any:
            q = request.query_params
            assert q["code_challenge_method"] == "S256"
            code = secrets.token_urlsafe(16)
            self.codes[code] = {
                "client_id": q["client_id"],
                "redirect_uri": q["redirect_uri"],
                "challenge": q["code_challenge"],
                "nonce": q.get("nonce"),
                "user": dict(self.user),
            }
            back = {"code": code, "state": q["state"]}
            if self.send_iss:
                back["iss"] = self.issuer
            return RedirectResponse(f"{q['redirect_uri']}?{urlencode(back)}", 302)

        @app.post(f"{path}/token")
        async def token(
            grant_type: str = Form(),
            code: str = Form(),
            redirect_uri: str = Form(),
            code_verifier: str = Form(""),
            client_id: str = Form(""),
            client_secret: str = Form(""),
        ) -> Any:
            self.token_calls += 1
            if self.token_status != 200:
                return JSONResponse({"error": "server_error"}, self.token_status)
            grant = self.codes.pop(code, None)
            if (
                grant is None
                or grant_type != "authorization_code"
                or client_secret != CLIENT_SECRET
                or client_id != grant["client_id"]
                or redirect_uri != grant["redirect_uri"]
                or s256(code_verifier) != grant["challenge"]
            ):
                return JSONResponse({"error": "invalid_grant"}, 400)
            access = secrets.token_urlsafe(16)
            self.codes[f"access:{access}"] = grant
            return {
                "access_token": access,
                "token_type": "Bearer",
                "id_token": self.id_token(grant),
            }

        @app.get(f"{path}/me")
        async def userinfo(authorization: str = Header("")) -> Any:
            grant = self.codes.get(f"access:{authorization.removeprefix('Bearer ')}")
            if grant is None:
                return JSONResponse({"error": "invalid_token"}, 401)
            info = dict(grant["user"])
            if self.userinfo_sub is not None:
                info["sub"] = self.userinfo_sub
            return info

        return app

    def id_token(self, grant: dict[str, Any]) -> str:
        now = int(self.clock.now() if self.clock is not None else time.time())
        claims: dict[str, Any] = {
            "iss": self.issuer,
            "sub": grant["user"]["sub"],
            "aud": grant["client_id"],
            "iat": now,
            "exp": now + 300,
            "nonce": grant["nonce"],
            **{k: v for k, v in grant["user"].items() if k != "sub"},
        }
        for name, value in self.claims.items():
            if value is None:
                claims.pop(name, None)
            else:
                claims[name] = value
        if self.signing == "none":
            header = base64.urlsafe_b64encode(b'{"alg":"none","kid":"k1"}').rstrip(b"=")
            body = jwt.encode({"alg": "HS256"}, claims, OctKey.generate_key(256)).split(".")[1]
            return f"{header.decode()}.{body}."
        if self.signing == "hs256":  # keyed with the provider's public key, as in the attack
            public = signing_key("k1").as_pem(private=False)
            head = _b64(json.dumps({"alg": "HS256", "kid": "k1"}).encode())
            body = _b64(json.dumps(claims).encode())
            mac = hmac.new(public, f"{head}.{body}".encode(), hashlib.sha256).digest()
            return f"{head}.{body}.{_b64(mac)}"
        key = signing_key("k1") if self.signing == "rs256" else signing_key("rogue")
        kid = "k1" if self.signing in ("rs256", "other-key") else "unknown"
        return jwt.encode({"alg": "RS256", "kid": kid}, claims, key)

    def provider(self, name: str = "corp", *, store_tokens: bool = False) -> GenericOIDCProvider:
        provider = GenericOIDCProvider(
            OAuthCredentials(
                CLIENT_ID, CLIENT_SECRET, issuer=self.issuer, store_tokens=store_tokens
            ),
            name=name,
            transport=httpx.ASGITransport(app=self.app()),
        )
        provider.test_idp = self  # type: ignore[attr-defined] # oauth_env sets its clock
        return provider


@dataclass
class GitHubStub:
    """GitHub's authorize, access_token, /user and /user/emails."""

    user: dict[str, Any] = field(
        default_factory=lambda: {"id": 4242, "login": "octo-cat", "name": "Octo Cat"}
    )
    emails: list[dict[str, Any]] = field(
        default_factory=lambda: [
            {"email": "octo@example.com", "primary": True, "verified": True},
        ]
    )
    codes: dict[str, dict[str, Any]] = field(default_factory=dict)

    def app(self) -> FastAPI:
        app = FastAPI()

        @app.get("/login/oauth/authorize")
        async def authorize(request: Request) -> Any:
            q = request.query_params
            code = secrets.token_urlsafe(16)
            self.codes[code] = {"challenge": q["code_challenge"], "redirect": q["redirect_uri"]}
            back = urlencode({"code": code, "state": q["state"]})
            return RedirectResponse(f"{q['redirect_uri']}?{back}", 302)

        @app.post("/login/oauth/access_token")
        async def access_token(
            code: str = Form(), code_verifier: str = Form(""), client_secret: str = Form("")
        ) -> Any:
            grant = self.codes.pop(code, None)
            if grant is None or s256(code_verifier) != grant["challenge"]:
                return {"error": "bad_verification_code"}  # GitHub answers errors with 200
            if client_secret != CLIENT_SECRET:
                return {"error": "incorrect_client_credentials"}
            self.codes["token:gho_1"] = {}
            return {"access_token": "gho_1", "token_type": "bearer", "scope": "read:user"}

        @app.get("/api/user")
        async def user(authorization: str = Header("")) -> Any:
            if authorization != "Bearer gho_1":
                return JSONResponse({"message": "Bad credentials"}, 401)
            return self.user

        @app.get("/api/user/emails")
        async def emails(authorization: str = Header("")) -> Any:
            if authorization != "Bearer gho_1":
                return JSONResponse({"message": "Bad credentials"}, 401)
            return self.emails

        return app

    def provider(self) -> GitHubOAuthProvider:
        base = "http://127.0.0.1:9"
        return GitHubOAuthProvider(
            OAuthCredentials(CLIENT_ID, CLIENT_SECRET),
            authorize_url=f"{base}/login/oauth/authorize",
            token_url=f"{base}/login/oauth/access_token",
            api_base_url=f"{base}/api",
            transport=httpx.ASGITransport(app=self.app()),
        )


async def provider_redirect(provider: Any, location: str) -> str:
    """What the provider's authorize endpoint answers a browser sent to ``location``: the
    callback URL it sends the browser back to."""
    async with httpx.AsyncClient(transport=provider.transport) as idp:
        answer = await idp.get(location)
    assert answer.status_code == 302, answer.text
    return answer.headers["location"]


def query_of(url: str) -> dict[str, str]:
    return {k: v[0] for k, v in parse_qs(urlsplit(url).query).items()}


async def sign_in(
    client: httpx.AsyncClient, provider: Any, name: str, **params: str
) -> httpx.Response:
    """Authorize, let the provider answer, and deliver its callback; the callback's answer."""
    start = await client.get(f"/oauth/{name}/authorize", params=params)
    assert start.status_code == 307, start.text
    callback = await provider_redirect(provider, start.headers["location"])
    return await client.get(callback)


async def oauth_env(make_env: Any, providers: dict[str, Any], **options: Any) -> Any:
    """An app (``make_env``) with these OAuth providers, initialised."""
    env = await make_env(oauth=providers, redirect_base_url=BASE, **options)
    for provider in providers.values():
        if hasattr(provider, "test_idp"):
            provider.test_idp.clock = env.clock
    await env.auth.initialize()
    async with env.sessionmaker() as db:  # PostgreSQL keeps the table between tests
        await db.execute(identities_table.delete())
        await db.commit()
    return env
