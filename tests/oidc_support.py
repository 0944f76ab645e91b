"""The outside world of an OAuth sign-in, on loopback, as pytest fixtures (tests/oidc/README.md).

- A real OpenID Connect provider (npm `oidc-provider`, tests/oidc/provider.mjs):
  `oidc_provider_factory` (session fixture) starts one Node process per distinct configuration
  on a free 127.0.0.1 port and stops them all at the end of the run; `oidc_provider` is the one
  with the default clients and accounts. `complete_login` plays the user at the provider (login
  form, consent screen) over plain HTTP and hands back the redirect to the client.
- `github_stub`: GitHub's OAuth and user endpoints (tests/apps/github_stub.py).
- `rogue_oidc`: a provider that tampers in one chosen way (tests/apps/rogue_oidc.py).

The last two run in a thread of the test process for the whole session; their function-scoped
fixtures reset every switch before each test.
"""

from __future__ import annotations

import json
import os
import re
import select
import shutil
import subprocess
import time
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field
from html import unescape
from pathlib import Path
from typing import Any, Literal
from urllib.parse import parse_qs, urljoin, urlsplit

import httpx
import pytest

from tests.apps.github_stub import GitHubStub
from tests.apps.rogue_oidc import RogueOIDC
from tests.loopback_server import LoopbackServer

OIDC_DIR = Path(__file__).resolve().parent / "oidc"

# Callbacks of apps served by httpx's ASGITransport (base_url http://testserver) under the
# default `/oauth` prefix; pass your own to the factory for anything else.
LOG_TAIL_LINES = 60

DEFAULT_REDIRECT_URIS = (
    "http://testserver/oauth/oidc/callback",
    "http://testserver/oauth/corp/callback",
    "http://testserver/oauth/google/callback",
)


@dataclass(frozen=True)
class OIDCClient:
    """A client registered at the provider."""

    client_id: str
    client_secret: str
    redirect_uris: tuple[str, ...] = DEFAULT_REDIRECT_URIS
    token_endpoint_auth_method: Literal["client_secret_basic", "client_secret_post"] = (
        "client_secret_basic"
    )


@dataclass(frozen=True)
class OIDCAccount:
    """A user of the provider; the login form takes `login` (the email when None)."""

    sub: str
    email: str
    password: str
    email_verified: bool = True
    name: str | None = None
    login: str | None = None


ALICE = OIDCAccount("alice-sub-0001", "alice@example.com", "alice-pass", True, "Alice Liddell")
BOB = OIDCAccount("bob-sub-0002", "bob@example.com", "bob-pass", False, "Bob Unverified")
DEFAULT_ACCOUNTS = (ALICE, BOB)
BASIC_CLIENT_ID = "crudauth-basic"
POST_CLIENT_ID = "crudauth-post"
CLIENT_SECRET = "client-secret-for-tests-0123456789abcdef"


def default_clients(redirect_uris: Sequence[str] = DEFAULT_REDIRECT_URIS) -> tuple[OIDCClient, ...]:
    """One client per token endpoint authentication method, sharing `redirect_uris`."""
    uris = tuple(redirect_uris)
    return (
        OIDCClient(BASIC_CLIENT_ID, CLIENT_SECRET, uris, "client_secret_basic"),
        OIDCClient(POST_CLIENT_ID, CLIENT_SECRET, uris, "client_secret_post"),
    )


@dataclass
class OIDCProvider:
    """A running provider process."""

    issuer: str
    clients: tuple[OIDCClient, ...]
    accounts: tuple[OIDCAccount, ...]
    log_path: Path
    process: subprocess.Popen[bytes] = field(repr=False)
    #: The discovery document, as read when the provider came up.
    metadata: dict[str, Any] = field(default_factory=dict, repr=False)

    @property
    def discovery_url(self) -> str:
        return f"{self.issuer}/.well-known/openid-configuration"

    def client(self, client_id: str = BASIC_CLIENT_ID) -> OIDCClient:
        return next(c for c in self.clients if c.client_id == client_id)

    async def jwks(self) -> dict[str, Any]:
        """The provider's published keys."""
        async with httpx.AsyncClient(timeout=5) as client:
            answer = await client.get(self.metadata["jwks_uri"])
        answer.raise_for_status()
        return dict(answer.json())

    def logs(self) -> str:
        """Everything the provider logged (one JSON line per event, plus Node's warnings)."""
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def alive(self) -> bool:
        return self.process.poll() is None

    def stop(self, timeout: float = 10) -> None:
        """Close its stdin (it exits on EOF), then escalate if it lingers."""
        for pipe in (self.process.stdin, self.process.stdout):
            if pipe is not None and not pipe.closed:
                pipe.close()
        try:
            self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=timeout)


def _node() -> str:
    node = shutil.which("node")
    if node is None:
        raise RuntimeError("node is not installed: the OIDC provider tests need Node.js 20+")
    if not (OIDC_DIR / "node_modules" / "oidc-provider").is_dir():
        raise RuntimeError("tests/oidc/node_modules is missing: run `bash scripts/install.sh`")
    return node


def _read_ready_line(process: subprocess.Popen[bytes], deadline: float) -> dict[str, Any]:
    assert process.stdout is not None
    buffer = b""
    while b"\n" not in buffer:
        remaining = deadline - time.monotonic()
        if remaining <= 0 or process.poll() is not None:
            raise RuntimeError("the OIDC provider did not start")
        readable, _, _ = select.select([process.stdout], [], [], min(remaining, 0.5))
        if readable:
            chunk = os.read(process.stdout.fileno(), 4096)
            if not chunk:
                raise RuntimeError("the OIDC provider closed its stdout before it was ready")
            buffer += chunk
    return dict(json.loads(buffer.split(b"\n", 1)[0]))


def start_oidc_provider(
    *,
    log_dir: Path,
    clients: Sequence[OIDCClient] | None = None,
    accounts: Sequence[OIDCAccount] = DEFAULT_ACCOUNTS,
    conform_id_token_claims: bool = False,
    timeout: float = 30,
) -> OIDCProvider:
    """Start a provider on a free loopback port and wait until discovery answers.

    `conform_id_token_claims=False` (Google's shape) puts `email`, `email_verified` and `name` in
    the ID token as well as in userinfo; True keeps them to userinfo only.
    """
    clients = tuple(clients) if clients is not None else default_clients()
    log_dir.mkdir(parents=True, exist_ok=True)
    config_path = log_dir / "config.json"
    config = {
        "clients": [{**asdict(c), "redirect_uris": list(c.redirect_uris)} for c in clients],
        "accounts": [{k: v for k, v in asdict(a).items() if v is not None} for a in accounts],
        "conform_id_token_claims": conform_id_token_claims,
    }
    config_path.write_text(json.dumps(config, indent=2))
    log_path = log_dir / "provider.log"
    with log_path.open("ab") as sink:  # the child keeps its own descriptor
        process = subprocess.Popen(
            [_node(), str(OIDC_DIR / "provider.mjs"), "--config", str(config_path)],
            cwd=OIDC_DIR,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=sink,
        )
    deadline = time.monotonic() + timeout
    try:
        ready = _read_ready_line(process, deadline)
        provider = OIDCProvider(ready["issuer"], clients, tuple(accounts), log_path, process)
        while True:
            try:
                answer = httpx.get(provider.discovery_url, timeout=1)
                if answer.is_success:
                    provider.metadata = dict(answer.json())
                    return provider
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError("the OIDC provider's discovery never answered")
            time.sleep(0.05)
    except BaseException as error:
        OIDCProvider("", (), (), log_path, process).stop()
        raise RuntimeError(f"{error}\n{log_path.read_text(errors='replace')}") from error


class OIDCProviderFactory:
    """Starts providers on demand, one per distinct configuration, for the whole run."""

    def __init__(self, base_dir: Path) -> None:
        self._base_dir = base_dir
        self._running: dict[object, OIDCProvider] = {}

    def __call__(
        self,
        *,
        redirect_uris: Sequence[str] = DEFAULT_REDIRECT_URIS,
        accounts: Sequence[OIDCAccount] = DEFAULT_ACCOUNTS,
        clients: Sequence[OIDCClient] | None = None,
        conform_id_token_claims: bool = False,
    ) -> OIDCProvider:
        """A provider with these clients (default: `default_clients(redirect_uris)`)."""
        chosen = tuple(clients) if clients is not None else default_clients(redirect_uris)
        key = (chosen, tuple(accounts), conform_id_token_claims)
        provider = self._running.get(key)
        if provider is None or not provider.alive():
            provider = start_oidc_provider(
                log_dir=self._base_dir / f"provider-{len(self._running)}",
                clients=chosen,
                accounts=accounts,
                conform_id_token_claims=conform_id_token_claims,
            )
            self._running[key] = provider
        return provider

    def running(self) -> list[OIDCProvider]:
        return list(self._running.values())

    def stop_all(self) -> None:
        for provider in self._running.values():
            provider.stop()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
    """A failed test that used the OIDC provider shows the tail of the provider's log."""
    report = yield
    factory = getattr(item, "funcargs", {}).get("oidc_provider_factory")
    if report.failed and isinstance(factory, OIDCProviderFactory):
        for provider in factory.running():
            tail = "\n".join(provider.logs().splitlines()[-LOG_TAIL_LINES:])
            report.sections.append((f"oidc-provider log ({provider.issuer})", tail))
    return report


@pytest.fixture(scope="session")
def oidc_provider_factory(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[OIDCProviderFactory]:
    factory = OIDCProviderFactory(tmp_path_factory.mktemp("oidc-provider"))
    yield factory
    factory.stop_all()


@pytest.fixture(scope="session")
def oidc_provider(oidc_provider_factory: OIDCProviderFactory) -> OIDCProvider:
    """The provider with `default_clients()` and `DEFAULT_ACCOUNTS`."""
    return oidc_provider_factory()


@pytest.fixture(scope="session")
def github_stub_server() -> Iterator[GitHubStub]:
    stub = GitHubStub()
    server = LoopbackServer(stub, name="github-stub")
    stub.base_url = server.start()
    yield stub
    server.stop()


@pytest.fixture
def github_stub(github_stub_server: GitHubStub) -> GitHubStub:
    """The GitHub stub with every switch off and no codes or tokens outstanding."""
    github_stub_server.reset()
    return github_stub_server


@pytest.fixture(scope="session")
def rogue_oidc_server() -> Iterator[RogueOIDC]:
    rogue = RogueOIDC()
    server = LoopbackServer(rogue, name="rogue-oidc")
    rogue.base_url = server.start()
    yield rogue
    server.stop()


@pytest.fixture
def rogue_oidc(rogue_oidc_server: RogueOIDC) -> RogueOIDC:
    """The rogue provider, honest until the test sets `mode`, with its first signing key."""
    rogue_oidc_server.reset()
    return rogue_oidc_server


class ProviderInteractionError(AssertionError):
    """The provider showed something `complete_login` cannot go on from."""


_FORM = re.compile(r'<form method="post" action="([^"]+)" data-prompt="(\w+)">')


def _forms(html: str) -> dict[str, str]:
    return {prompt: unescape(action) for action, prompt in _FORM.findall(html)}


def callback_params(url: str) -> dict[str, str]:
    """The query of a redirect to the client: `code`, `state`, `iss`, or `error`."""
    return {k: v[0] for k, v in parse_qs(urlsplit(url).query, keep_blank_values=True).items()}


def _origin(url: str) -> tuple[str, str]:
    parts = urlsplit(url)
    return parts.scheme, parts.netloc


async def complete_login(
    authorize_url: str,
    login: str,
    password: str,
    *,
    consent: bool = True,
    browser: httpx.AsyncClient | None = None,
    max_steps: int = 12,
) -> str:
    """Sign in at the provider and answer its consent screen, as a user would.

    Returns the URL the provider redirects to outside itself (the client's redirect_uri with
    `code`, `state` and `iss`, or `error`), without following it. Pass `browser` to keep the
    provider's cookies across calls (a second sign-in then skips the login form). Raises
    `ProviderInteractionError` on a refused login or a provider error page.
    """
    provider_origin = _origin(authorize_url)
    client = browser or httpx.AsyncClient(timeout=10)
    try:
        answer = await client.get(authorize_url)
        for _ in range(max_steps):
            if answer.is_redirect:
                target = urljoin(str(answer.url), answer.headers["location"])
                if _origin(target) != provider_origin:
                    return target
                answer = await client.get(target)
                continue
            forms = _forms(answer.text)
            if answer.status_code == 200 and "login" in forms:
                action, data = forms["login"], {"login": login, "password": password}
            elif answer.status_code == 200 and "consent" in forms:
                action, data = forms["consent" if consent else "abort"], {}
            else:
                raise ProviderInteractionError(
                    f"provider answered {answer.status_code} at {answer.url}:\n{answer.text}"
                )
            answer = await client.post(urljoin(str(answer.url), action), data=data)
        raise ProviderInteractionError(f"no redirect to the client after {max_steps} steps")
    finally:
        if browser is None:
            await client.aclose()
