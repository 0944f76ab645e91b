"""A stand-in for GitHub's OAuth app endpoints and the two REST calls a sign-in makes.

Speaks GitHub's shapes: `GET /login/oauth/authorize` (auto-approves as `signed_in_as`),
`POST /login/oauth/access_token` (form or Basic client credentials; JSON when the client asks
for it, form-encoded otherwise; errors such as `bad_verification_code` come with status 200,
as GitHub sends them), `GET /user` and `GET /user/emails` with a bearer token. The switches
(`deny`, `server_error`, `malformed_json`, `delay`, `no_verified_email`) stand for the failures
a client must survive. One origin serves both github.com and api.github.com paths.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import secrets
import time
from dataclasses import dataclass, field
from typing import Any, Literal
from urllib.parse import urlencode

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response
from starlette.routing import Route

Endpoint = Literal["authorize", "access_token", "user", "emails"]
DOCS = "https://docs.github.com/rest"
CLIENT_ID = "Iv1.stubgithubclient"
CLIENT_SECRET = "stub-github-client-secret-0123456789abcdef"


@dataclass(frozen=True)
class GitHubEmail:
    email: str
    primary: bool = False
    verified: bool = True
    visibility: Literal["public", "private"] | None = None

    def as_json(self, verified: bool) -> dict[str, Any]:
        return {
            "email": self.email,
            "primary": self.primary,
            "verified": verified,
            "visibility": self.visibility,
        }


@dataclass(frozen=True)
class GitHubUser:
    id: int
    login: str
    name: str | None
    emails: tuple[GitHubEmail, ...]

    def public_email(self) -> str | None:
        return next((e.email for e in self.emails if e.visibility == "public"), None)


OCTOCAT = GitHubUser(
    583231,
    "octocat",
    "The Octocat",
    (
        GitHubEmail("octocat@github.com", primary=True, verified=True, visibility="public"),
        GitHubEmail("octo@example.org", verified=True),
        GitHubEmail("octo-old@example.net", verified=False),
    ),
)
# The primary address is unverified while another one is verified: not a verified primary.
MONA = GitHubUser(
    1000002,
    "mona",
    None,
    (
        GitHubEmail("mona@example.com", primary=True, verified=False),
        GitHubEmail("mona@work.example", verified=True, visibility="public"),
    ),
)
DEFAULT_USERS = (OCTOCAT, MONA)


@dataclass
class _Grant:
    login: str
    scope: str
    redirect_uri: str | None
    code_challenge: str | None
    expires_at: float


def _s256(verifier: str) -> str:
    digest = hashlib.sha256(verifier.encode("ascii")).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


@dataclass
class GitHubStub:
    """The app and its state; flip the switches from a test, `reset()` between tests."""

    client_id: str = CLIENT_ID
    client_secret: str = CLIENT_SECRET
    users: tuple[GitHubUser, ...] = DEFAULT_USERS
    base_url: str = ""  # set once served
    # The account the browser is signed in to at "GitHub": authorize approves as this user.
    signed_in_as: str = OCTOCAT.login
    deny: bool = False
    server_error: set[Endpoint] = field(default_factory=set)
    malformed_json: set[Endpoint] = field(default_factory=set)
    delay: dict[Endpoint, float] = field(default_factory=dict)
    no_verified_email: bool = False
    #: Query parameters of every authorize request, in order (state, scope, PKCE...).
    authorize_requests: list[dict[str, str]] = field(default_factory=list)
    #: Form fields of every access-token request (client secret removed).
    token_requests: list[dict[str, str]] = field(default_factory=list)
    _codes: dict[str, _Grant] = field(default_factory=dict, repr=False)
    _tokens: dict[str, _Grant] = field(default_factory=dict, repr=False)
    app: Starlette = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self.app = Starlette(
            routes=[
                Route("/login/oauth/authorize", self.authorize, methods=["GET"]),
                Route("/login/oauth/access_token", self.access_token, methods=["POST"]),
                Route("/user", self.user, methods=["GET"]),
                Route("/user/emails", self.emails, methods=["GET"]),
            ]
        )

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        await self.app(scope, receive, send)

    @property
    def authorize_url(self) -> str:
        return f"{self.base_url}/login/oauth/authorize"

    @property
    def token_url(self) -> str:
        return f"{self.base_url}/login/oauth/access_token"

    @property
    def api_url(self) -> str:
        return self.base_url

    def reset(self) -> None:
        self.users, self.signed_in_as = DEFAULT_USERS, OCTOCAT.login
        self.deny = self.no_verified_email = False
        self.server_error, self.malformed_json, self.delay = set(), set(), {}
        self.authorize_requests, self.token_requests = [], []
        self._codes, self._tokens = {}, {}

    def user_named(self, login: str) -> GitHubUser:
        return next(u for u in self.users if u.login == login)

    async def _fault(self, endpoint: Endpoint) -> Response | None:
        if endpoint in self.delay:
            await asyncio.sleep(self.delay[endpoint])
        if endpoint in self.server_error:
            return Response(
                "<html>Unicorn! Something went wrong.</html>", 500, media_type="text/html"
            )
        if endpoint in self.malformed_json:
            return Response('{"access_token": "gho_', 200, media_type="application/json")
        return None

    async def authorize(self, request: Request) -> Response:
        params = dict(request.query_params)
        self.authorize_requests.append(params)
        if (fault := await self._fault("authorize")) is not None:
            return fault
        if params.get("client_id") != self.client_id or "redirect_uri" not in params:
            return Response("The redirect_uri or client_id is not valid.", 404)
        answer: dict[str, str]
        if self.deny:
            answer = {
                "error": "access_denied",
                "error_description": "The user has denied your application access.",
                "error_uri": f"{DOCS}/oauth",
            }
        else:
            if params.get("code_challenge") and params.get("code_challenge_method") != "S256":
                return Response("Unsupported code_challenge_method.", 400)
            code = secrets.token_hex(10)
            self._codes[code] = _Grant(
                self.signed_in_as,
                params.get("scope", ""),
                params["redirect_uri"],
                params.get("code_challenge"),
                time.time() + 600,
            )
            answer = {"code": code}
        if "state" in params:
            answer["state"] = params["state"]
        return RedirectResponse(f"{params['redirect_uri']}?{urlencode(answer)}", 302)

    def _client_credentials(self, request: Request, form: dict[str, str]) -> tuple[str, str]:
        header = request.headers.get("authorization", "")
        if header.lower().startswith("basic "):
            decoded = base64.b64decode(header[6:]).decode()
            client_id, _, secret = decoded.partition(":")
            return client_id, secret
        return form.get("client_id", ""), form.get("client_secret", "")

    def _token_answer(self, request: Request, body: dict[str, str]) -> Response:
        # GitHub answers token errors with 200 too: a client must read `error`.
        if "application/json" in request.headers.get("accept", ""):
            return JSONResponse(body)
        return Response(urlencode(body), media_type="application/x-www-form-urlencoded")

    async def access_token(self, request: Request) -> Response:
        form = {k: str(v) for k, v in (await request.form()).items()}
        self.token_requests.append({k: v for k, v in form.items() if k != "client_secret"})
        if (fault := await self._fault("access_token")) is not None:
            return fault
        if self._client_credentials(request, form) != (self.client_id, self.client_secret):
            return self._token_answer(request, _error("incorrect_client_credentials"))
        grant = self._codes.pop(form.get("code", ""), None)  # single use, even when refused
        if grant is None or grant.expires_at < time.time():
            return self._token_answer(request, _error("bad_verification_code"))
        if form.get("redirect_uri", grant.redirect_uri) != grant.redirect_uri:
            return self._token_answer(request, _error("redirect_uri_mismatch"))
        if grant.code_challenge is not None and (
            _s256(form.get("code_verifier", "")) != grant.code_challenge
        ):
            return self._token_answer(request, _error("bad_verification_code"))
        token = f"gho_{secrets.token_urlsafe(27)}"
        self._tokens[token] = grant
        scope = ",".join(s for s in grant.scope.replace(",", " ").split() if s)
        return self._token_answer(
            request, {"access_token": token, "scope": scope, "token_type": "bearer"}
        )

    def _grant_of(self, request: Request) -> _Grant | None:
        kind, _, token = request.headers.get("authorization", "").partition(" ")
        if kind.lower() not in ("bearer", "token"):
            return None
        return self._tokens.get(token)

    async def user(self, request: Request) -> Response:
        if (fault := await self._fault("user")) is not None:
            return fault
        grant = self._grant_of(request)
        if grant is None:
            return JSONResponse({"message": "Bad credentials", "documentation_url": DOCS}, 401)
        user = self.user_named(grant.login)
        return JSONResponse(
            {
                "login": user.login,
                "id": user.id,
                "node_id": f"MDQ6VXNlcj{user.id}",
                "avatar_url": f"{self.base_url}/avatars/{user.id}",
                "type": "User",
                "name": user.name,
                "email": None if self.no_verified_email else user.public_email(),
            }
        )

    async def emails(self, request: Request) -> Response:
        if (fault := await self._fault("emails")) is not None:
            return fault
        grant = self._grant_of(request)
        if grant is None:
            return JSONResponse({"message": "Bad credentials", "documentation_url": DOCS}, 401)
        scopes = set(grant.scope.replace(",", " ").split())
        if not scopes & {"user", "user:email"}:
            return JSONResponse({"message": "Not Found", "documentation_url": DOCS}, 404)
        user = self.user_named(grant.login)
        return JSONResponse(
            [e.as_json(e.verified and not self.no_verified_email) for e in user.emails]
        )


def _error(code: str) -> dict[str, str]:
    return {"error": code, "error_description": code.replace("_", " "), "error_uri": DOCS}
