"""Linking and unlinking providers: while signed in, by the owner's mailed confirmation, never
silently; unlinking never leaves an account without a way to sign in."""

from __future__ import annotations

from typing import Any

import httpx
from sqlalchemy import select

from crudauth.oauth import (
    AbstractOAuthProvider,
    OAuthCredentials,
    OAuthProviderFactory,
    OAuthUserInfo,
    identities_table,
)
from tests.conftest import login, register
from tests.email_support import Outbox, email_config
from tests.oauth_support import (
    BASE,
    CLIENT_ID,
    CLIENT_SECRET,
    GitHubStub,
    OIDCProvider,
    oauth_env,
    provider_redirect,
    sign_in,
)

PASSWORD = "correct horse battery"


def csrf(client: httpx.AsyncClient) -> dict[str, str]:
    return {"X-CSRF-Token": client.cookies["csrf_token"]}


async def link(env: Any, name: str, provider: Any) -> httpx.Response:
    started = await env.client.post(f"/oauth/{name}/link", headers=csrf(env.client))
    assert started.status_code == 200, started.text
    return await env.client.get(await provider_redirect(provider, started.json()["url"]))


async def test_a_signed_in_user_links_a_provider_and_signs_in_with_it(make_env):
    idp = OIDCProvider(
        user={"sub": "s-9", "email": "elsewhere@corp.example", "email_verified": True}
    )
    provider = idp.provider()
    env = await oauth_env(make_env, {"corp": provider})
    await register(env.client, "bob", "bob@example.com", PASSWORD)
    await login(env.client, "bob", PASSWORD)
    me = (await env.client.get("/me")).json()["user_id"]
    answer = await link(env, "corp", provider)
    assert answer.status_code == 307
    listed = (await env.client.get("/oauth/identities")).json()
    assert [(i["provider"], i["email"]) for i in listed] == [("corp", "elsewhere@corp.example")]
    env.client.cookies.clear()
    await sign_in(env.client, provider, "corp")
    assert (await env.client.get("/me")).json()["user_id"] == me


async def test_linking_needs_a_signed_in_user(make_env):
    env = await oauth_env(make_env, {"corp": OIDCProvider().provider()})
    assert (await env.client.post("/oauth/corp/link")).status_code == 401


async def test_an_identity_linked_to_another_account_is_not_moved(make_env):
    idp = OIDCProvider()
    provider = idp.provider()
    env = await oauth_env(make_env, {"corp": provider})
    await sign_in(env.client, provider, "corp")  # ada's account owns the identity
    env.client.cookies.clear()
    await register(env.client, "bob", "bob@example.com", PASSWORD)
    await login(env.client, "bob", PASSWORD)
    answer = await link(env, "corp", provider)
    assert answer.headers["location"] == f"{BASE}/?error=provider_already_linked"
    assert (await env.client.get("/oauth/identities")).json() == []


async def test_the_owner_confirms_a_link_by_mail_and_a_squatter_loses_the_account(make_env):
    outbox = Outbox()
    idp = OIDCProvider()
    provider = idp.provider()
    env = await oauth_env(make_env, {"corp": provider}, email=email_config(outbox))
    squatter = httpx.AsyncClient(transport=httpx.ASGITransport(app=env.app), base_url=BASE)
    async with squatter:
        # Someone registers the victim's address (never verified) and keeps a session.
        await register(squatter, "squatter", "ada@example.com", PASSWORD)
        assert (await login(squatter, "squatter", PASSWORD)).status_code == 200
        # The victim signs in with the provider: no takeover, a mail to the address instead.
        answer = await sign_in(env.client, provider, "corp")
        assert answer.headers["location"] == f"{BASE}/?error=link_confirmation_required"
        assert outbox.of("link_account")[-1]["to"] == "ada@example.com"
        token = outbox.last_token("link_account")
        confirmed = await env.client.post("/oauth/link/confirm", json={"token": token})
        assert confirmed.json() == {"detail": "Account linked."}
        # The squatter's session and password are gone; the owner signs in with the provider.
        assert (await squatter.get("/me")).status_code == 401
        assert (await login(squatter, "squatter", PASSWORD)).status_code == 401
    assert (await sign_in(env.client, provider, "corp")).headers["location"] == f"{BASE}/"
    assert (await env.client.get("/me")).json()["email"] == "ada@example.com"
    again = await env.client.post("/oauth/link/confirm", json={"token": token})
    assert again.status_code == 400


async def test_a_verified_password_account_keeps_its_password_when_linked_by_mail(make_env):
    outbox = Outbox()
    provider = OIDCProvider().provider()
    env = await oauth_env(make_env, {"corp": provider}, email=email_config(outbox))
    await register(env.client, "ada_local", "ada@example.com", PASSWORD)
    async with env.sessionmaker() as db:
        user = await env.auth.repo.find_by(db, "email", "ada@example.com")
        await env.auth.repo.update(db, user, {"email_verified": True})
    await sign_in(env.client, provider, "corp")
    token = outbox.last_token("link_account")
    assert (await env.client.post("/oauth/link/confirm", json={"token": token})).status_code == 200
    assert (await login(env.client, "ada_local", PASSWORD)).status_code == 200


async def test_a_second_provider_with_the_same_verified_email_joins_an_oauth_account(make_env):
    corp, github = (
        OIDCProvider(user={"sub": "c1", "email": "octo@example.com", "email_verified": True}),
        GitHubStub(),
    )
    pc, pg = corp.provider(), github.provider()
    env = await oauth_env(make_env, {"corp": pc, "github": pg})
    await sign_in(env.client, pc, "corp")
    first = (await env.client.get("/me")).json()["user_id"]
    env.client.cookies.clear()
    await sign_in(env.client, pg, "github")
    assert (await env.client.get("/me")).json()["user_id"] == first
    assert {i["provider"] for i in (await env.client.get("/oauth/identities")).json()} == {
        "corp",
        "github",
    }


async def test_unlinking_the_last_way_to_sign_in_is_refused(make_env):
    provider = OIDCProvider().provider()
    env = await oauth_env(make_env, {"corp": provider})
    await sign_in(env.client, provider, "corp")
    [identity] = (await env.client.get("/oauth/identities")).json()
    answer = await env.client.delete(
        f"/oauth/identities/{identity['id']}", headers=csrf(env.client)
    )
    assert answer.status_code == 400
    assert answer.json() == {"detail": "last_sign_in_method"}
    assert len((await env.client.get("/oauth/identities")).json()) == 1


async def test_unlinking_one_of_two_providers_or_with_a_password_works(make_env):
    corp, github = (
        OIDCProvider(user={"sub": "c1", "email": "octo@example.com", "email_verified": True}),
        GitHubStub(),
    )
    pc, pg = corp.provider(), github.provider()
    env = await oauth_env(make_env, {"corp": pc, "github": pg})
    await sign_in(env.client, pc, "corp")
    env.client.cookies.clear()
    await sign_in(env.client, pg, "github")
    listed = (await env.client.get("/oauth/identities")).json()
    github_id = next(i["id"] for i in listed if i["provider"] == "github")
    answer = await env.client.delete(f"/oauth/identities/{github_id}", headers=csrf(env.client))
    assert answer.json() == {"detail": "Identity unlinked."}
    async with env.sessionmaker() as db:
        user = await env.auth.repo.find_by(db, "email", "octo@example.com")
        assert user.github_id is None  # the reference's column follows
    env.client.cookies.clear()
    answer = await sign_in(env.client, pg, "github")  # a new identity: same verified address
    assert answer.headers["location"] == f"{BASE}/"


async def test_someone_elses_identity_cannot_be_unlinked(make_env):
    provider = OIDCProvider().provider()
    env = await oauth_env(make_env, {"corp": provider})
    await sign_in(env.client, provider, "corp")
    [identity] = (await env.client.get("/oauth/identities")).json()
    env.client.cookies.clear()
    await register(env.client, "bob", "bob@example.com", PASSWORD)
    await login(env.client, "bob", PASSWORD)
    answer = await env.client.delete(
        f"/oauth/identities/{identity['id']}", headers=csrf(env.client)
    )
    assert answer.status_code == 404


async def test_a_reference_era_provider_column_still_signs_in(make_env):
    github = GitHubStub()
    provider = github.provider()
    env = await oauth_env(make_env, {"github": provider})
    await register(env.client, "octo_old", "old@example.com", PASSWORD)
    async with env.sessionmaker() as db:
        user = await env.auth.repo.find_by(db, "email", "old@example.com")
        await env.auth.repo.update(db, user, {"github_id": "4242"})
    await sign_in(env.client, provider, "github")
    assert (await env.client.get("/me")).json()["username"] == "octo_old"
    async with env.sessionmaker() as db:
        rows = (await db.execute(select(identities_table))).all()
    assert [(r.provider, r.subject) for r in rows] == [("github", "4242")]


async def test_tokens_are_kept_only_when_asked_and_encrypted(make_env):
    kept, plain = OIDCProvider(), OIDCProvider(issuer="http://127.0.0.1:9/plain")
    pk, pp = kept.provider("kept", store_tokens=True), plain.provider("plain")
    env = await oauth_env(make_env, {"kept": pk, "plain": pp})
    await sign_in(env.client, pk, "kept")
    async with env.sessionmaker() as db:
        [row] = (await db.execute(select(identities_table))).all()
        assert row.tokens.startswith("v1.") and "access_token" not in row.tokens
        user = await env.auth.repo.find_by(db, "email", "ada@example.com")
        stored = await env.auth.oauth_accounts.stored_tokens(db, user, "kept")
    assert stored is not None and stored["access_token"]
    env.client.cookies.clear()
    await sign_in(env.client, pp, "plain")
    async with env.sessionmaker() as db:
        rows = (
            await db.execute(select(identities_table.c.provider, identities_table.c.tokens))
        ).all()
    assert dict(rows)["plain"] is None


class AcmeProvider(AbstractOAuthProvider):
    """A custom provider, written as the docs show."""

    name = "acme"
    authorize_url = "http://127.0.0.1:9/login/oauth/authorize"
    token_url = "http://127.0.0.1:9/login/oauth/access_token"
    default_scopes = ("profile",)

    async def get_user_info(self, access_token: str) -> OAuthUserInfo:
        user = await self.request_json("GET", "http://127.0.0.1:9/api/user", token=access_token)
        return OAuthUserInfo(
            provider=self.provider_name,
            provider_id=str(user["id"]),
            email="acme-user@example.com",
            email_verified=True,
            username=user["login"],
        )

    def http_client(self) -> httpx.AsyncClient:
        return httpx.AsyncClient(transport=httpx.ASGITransport(app=STUB.app()), timeout=5)


STUB = GitHubStub()


async def test_a_custom_provider_registered_with_the_factory_signs_in(make_env):
    OAuthProviderFactory.register_provider("acme", AcmeProvider)
    env = await oauth_env(make_env, {"acme": OAuthCredentials(CLIENT_ID, CLIENT_SECRET)})
    start = await env.client.get("/oauth/acme/authorize")
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=STUB.app())) as idp:
        back = (await idp.get(start.headers["location"])).headers["location"]
    answer = await env.client.get(back)
    assert answer.headers["location"] == f"{BASE}/"
    assert (await env.client.get("/me")).json()["username"] == "octo_cat"


async def test_the_identity_of_a_deleted_account_signs_up_afresh(make_env):
    provider = OIDCProvider().provider()
    env = await oauth_env(make_env, {"corp": provider})
    await sign_in(env.client, provider, "corp")
    async with env.sessionmaker() as db:
        user = await env.auth.repo.find_by(db, "email", "ada@example.com")
        await db.delete(user)
        await db.commit()
    env.client.cookies.clear()
    answer = await sign_in(env.client, provider, "corp")
    assert answer.headers["location"] == f"{BASE}/"
    assert (await env.client.get("/me")).json()["email"] == "ada@example.com"


async def test_the_sql_store_creates_the_identities_table_with_its_own(make_env, tmp_path):
    from sqlalchemy import inspect
    from sqlalchemy.ext.asyncio import async_sessionmaker, create_async_engine

    from crudauth import DatabaseStore

    engine = create_async_engine(f"sqlite+aiosqlite:///{tmp_path / 'store.db'}")
    store = DatabaseStore(async_sessionmaker(engine))
    try:
        await make_env(
            oauth={"corp": OIDCProvider().provider()},
            redirect_base_url=BASE,
            database_store=store,
        )
        assert "crudauth_oauth_identities" in store.metadata.tables
        await store.create_tables()
        async with engine.connect() as conn:
            names = await conn.run_sync(lambda sync: inspect(sync).get_table_names())
        assert "crudauth_oauth_identities" in names
    finally:
        await engine.dispose()
