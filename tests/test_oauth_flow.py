"""OAuth sign-in end to end against in-process providers: the code flow lands in a session."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from crudauth import AuthHooks
from crudauth.oauth import OAuthCredentials, identities_table
from tests.conftest import login, register
from tests.oauth_support import BASE, GitHubStub, OIDCProvider, oauth_env, query_of, sign_in


async def test_oidc_sign_in_creates_a_user_and_a_session(make_env):
    idp = OIDCProvider()
    provider = idp.provider()
    env = await oauth_env(make_env, {"corp": provider})
    answer = await sign_in(env.client, provider, "corp", redirect_to="/welcome")
    assert answer.status_code == 307
    assert answer.headers["location"] == "/welcome"
    assert "session_id" in answer.cookies
    me = await env.client.get("/me")
    assert me.status_code == 200
    assert me.json()["email"] == "ada@example.com"
    assert me.json()["username"] == "ada"


async def test_the_authorize_redirect_carries_pkce_s256_a_nonce_and_a_256_bit_state(make_env):
    idp = OIDCProvider()
    env = await oauth_env(make_env, {"corp": idp.provider()})
    start = await env.client.get("/oauth/corp/authorize")
    params = query_of(start.headers["location"])
    assert params["code_challenge_method"] == "S256"
    assert len(params["code_challenge"]) == 43
    assert len(params["state"]) >= 43 and len(params["nonce"]) >= 43
    assert params["redirect_uri"] == f"{BASE}/oauth/corp/callback"
    cookie = start.headers["set-cookie"]
    assert cookie.startswith("oauth_state=") and "HttpOnly" in cookie
    assert "Max-Age=600" in cookie and "SameSite=lax" in cookie
    assert params["state"] not in cookie  # the cookie holds a second secret, not the state


async def test_the_state_is_stored_under_a_hash_never_raw(make_env):
    idp = OIDCProvider()
    env = await oauth_env(make_env, {"corp": idp.provider()})
    start = await env.client.get("/oauth/corp/authorize")
    state = query_of(start.headers["location"])["state"]
    store = env.auth.tokens
    assert await store.get(f"oauth_state:{state}") is None
    digest = env.auth.runtime.keys.digest("oauth-state", state)
    assert await store.get(f"oauth_state:{digest}") is not None


async def test_json_mode_answers_the_url_then_the_user(make_env):
    idp = OIDCProvider()
    provider = idp.provider()
    env = await oauth_env(make_env, {"corp": provider}, oauth_response_mode="json")
    start = await env.client.get("/oauth/corp/authorize", params={"redirect_to": "/x"})
    assert start.status_code == 200
    from tests.oauth_support import provider_redirect

    callback = await provider_redirect(provider, start.json()["url"])
    answer = await env.client.get(callback)
    assert answer.status_code == 200
    body = answer.json()
    assert body["user"]["email"] == "ada@example.com"
    assert body["user"]["is_superuser"] is False
    assert body["redirect_to"] == "/x" and body["csrf_token"]


async def test_a_second_sign_in_finds_the_same_user_by_subject(make_env):
    idp = OIDCProvider()
    provider = idp.provider()
    env = await oauth_env(make_env, {"corp": provider})
    await sign_in(env.client, provider, "corp")
    first = (await env.client.get("/me")).json()["user_id"]
    idp.user["email"] = "ada@new.example.com"  # the address moved; the subject did not
    await sign_in(env.client, provider, "corp")
    assert (await env.client.get("/me")).json()["user_id"] == first


async def test_hooks_fire_register_oauth_login_and_login(make_env):
    seen: list[str] = []
    hooks = AuthHooks(
        on_after_register=lambda user, **kw: seen.append(f"register:{kw['context'].transport}"),
        on_oauth_login=lambda user, info, **kw: seen.append(f"oauth:{kw['created']}"),
        on_after_login=lambda user, **kw: seen.append("login"),
    )
    idp = OIDCProvider()
    provider = idp.provider()
    env = await oauth_env(make_env, {"corp": provider}, hooks=hooks)
    await sign_in(env.client, provider, "corp")
    await sign_in(env.client, provider, "corp")
    assert seen == ["register:oauth", "oauth:True", "login", "oauth:False", "login"]


async def test_github_signs_in_with_its_primary_verified_address(make_env):
    github = GitHubStub()
    provider = github.provider()
    env = await oauth_env(make_env, {"github": provider})
    answer = await sign_in(env.client, provider, "github")
    assert answer.status_code == 307, answer.headers
    me = (await env.client.get("/me")).json()
    assert me["email"] == "octo@example.com"
    assert me["username"] == "octo_cat"
    async with env.sessionmaker() as db:
        user = (await db.execute(select(env.auth.repo.model))).scalars().one()
        assert user.github_id == "4242"  # the reference's column is kept up to date


async def test_github_with_an_unverified_primary_address_is_refused(make_env):
    github = GitHubStub(
        emails=[
            {"email": "octo@example.com", "primary": True, "verified": False},
            {"email": "other@example.com", "primary": False, "verified": True},
        ]
    )
    provider = github.provider()
    env = await oauth_env(make_env, {"github": provider})
    answer = await sign_in(env.client, provider, "github")
    assert answer.headers["location"] == f"{BASE}/?error=email_unverified"
    assert (await env.client.get("/me")).status_code == 401


async def test_the_identity_is_recorded_in_the_identities_table(make_env):
    idp = OIDCProvider()
    provider = idp.provider()
    env = await oauth_env(make_env, {"corp": provider})
    await sign_in(env.client, provider, "corp")
    async with env.sessionmaker() as db:
        rows = (await db.execute(select(identities_table))).all()
    assert [(r.provider, r.subject) for r in rows] == [("corp", "user-1")]
    listed = await env.client.get("/oauth/identities")
    assert [i["provider"] for i in listed.json()] == ["corp"]


async def test_the_new_user_gets_an_unusable_password(make_env):
    idp = OIDCProvider()
    provider = idp.provider()
    env = await oauth_env(make_env, {"corp": provider})
    await sign_in(env.client, provider, "corp")
    await env.client.post("/logout", headers={"X-CSRF-Token": env.client.cookies["csrf_token"]})
    assert (await login(env.client, "ada", "")).status_code in (401, 422)


@pytest.mark.parametrize(
    "options, message",
    [
        ({}, "redirect_base_url"),
        ({"redirect_base_url": BASE, "identity": "username-only"}, "email"),
        ({"redirect_base_url": BASE, "transports": "bearer-only"}, "SessionTransport"),
    ],
)
def test_construction_errors_of_the_reference(options, message):
    from crudauth import BearerTransport, ConfigurationError, CRUDAuth, IdentityConfig
    from tests.conftest import SECRET, User

    if options.get("identity") == "username-only":
        options["identity"] = IdentityConfig(login=["username"])
    if options.get("transports") == "bearer-only":
        options["transports"] = [BearerTransport()]
    with pytest.raises(ConfigurationError, match=message):
        CRUDAuth(
            session=lambda: None,
            user_model=User,
            SECRET_KEY=SECRET,
            oauth={"google": OAuthCredentials("id", "secret")},
            warn_on_memory_backend=False,
            **options,
        )


def test_an_unknown_provider_without_an_issuer_is_refused():
    from crudauth import ConfigurationError, CRUDAuth
    from tests.conftest import SECRET, User

    with pytest.raises(ConfigurationError, match="unknown OAuth provider"):
        CRUDAuth(
            session=lambda: None,
            user_model=User,
            SECRET_KEY=SECRET,
            oauth={"acme": OAuthCredentials("id", "secret")},
            redirect_base_url=BASE,
            warn_on_memory_backend=False,
        )


def test_oauth_options_without_oauth_are_refused():
    from crudauth import ConfigurationError, CRUDAuth
    from tests.conftest import SECRET, User

    with pytest.raises(ConfigurationError, match="only apply with oauth"):
        CRUDAuth(
            session=lambda: None,
            user_model=User,
            SECRET_KEY=SECRET,
            redirect_base_url=BASE,
            warn_on_memory_backend=False,
        )


async def test_an_existing_password_account_is_not_taken_over(make_env):
    idp = OIDCProvider()
    provider = idp.provider()
    env = await oauth_env(make_env, {"corp": provider})
    await register(env.client, "ada_local", "ada@example.com", "correct horse battery")
    answer = await sign_in(env.client, provider, "corp")
    assert answer.headers["location"] == f"{BASE}/?error=link_confirmation_required"
    assert "session_id" not in answer.cookies
    assert (await login(env.client, "ada_local", "correct horse battery")).status_code == 200


async def test_an_issuer_with_a_trailing_slash_is_compared_as_discovery_states_it(make_env):
    idp = OIDCProvider(issuer="http://127.0.0.1:9/tenant/")  # Auth0 writes its issuer so
    provider = idp.provider()
    env = await oauth_env(make_env, {"corp": provider})
    answer = await sign_in(env.client, provider, "corp")
    assert answer.headers["location"] == f"{BASE}/"
    assert provider.issuer == "http://127.0.0.1:9/tenant/"


@pytest.mark.parametrize("landing", ["/\\evil.example", "//evil.example", "http://evil.example/"])
def test_an_unsafe_default_redirect_is_refused(landing):
    from crudauth import ConfigurationError, CRUDAuth
    from tests.conftest import SECRET, User

    with pytest.raises(ConfigurationError, match="oauth_default_redirect"):
        CRUDAuth(
            session=lambda: None,
            user_model=User,
            SECRET_KEY=SECRET,
            oauth={"google": OAuthCredentials("id", "secret")},
            redirect_base_url=BASE,
            oauth_default_redirect=landing,
            warn_on_memory_backend=False,
        )
