"""Whether a credential's account still lets it in: one rule (``transports/shared/standing.py``)
for sessions, access tokens, refresh tokens and the bearer claims entries."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi import Depends

from crudauth import BearerTransport, Principal, SessionTransport
from crudauth.transports.shared import Standing, standing
from tests.account_support import sign_in
from tests.bearer_support import bearer, get_tokens, sign_up, update_user
from tests.conftest import register


@pytest.mark.parametrize(
    ("active", "epoch", "presented", "expected"),
    [
        (True, 3, 3, Standing.CURRENT),
        (True, 3, None, Standing.CURRENT),  # a record from before records carried an epoch
        (True, 3, 2, Standing.ENDED),  # a credential change since it was issued
        (True, 3, 4, Standing.AHEAD),  # a row read too early, or a database set back
        (False, 3, 3, Standing.ENDED),
        (False, 3, 4, Standing.ENDED),  # disabled wins over any epoch
        (None, 0, 0, Standing.ENDED),  # no such account
    ],
)
def test_the_one_rule_for_a_credentials_account(
    active: bool | None, epoch: int, presented: int | None, expected: Standing
) -> None:
    assert standing(active, epoch, presented) is expected


async def test_a_session_ahead_of_a_fresh_read_of_its_account_ends_at_csrf_refresh(
    make_env: Any,
) -> None:
    """``/csrf/refresh`` reads the row fresh: a session at a newer epoch than the database
    says (a database restored from a backup) ends there, so it cannot come back to life when
    the account's epoch climbs to its number again."""
    env = await make_env(transports=[SessionTransport(management_routes=True)])
    await register(env.client)
    laptop = await sign_in(env)
    transport = env.auth.transports[0]
    [(key, _)] = await transport.manager.list_for_user(1)
    assert await transport.manager.store.update(key, {"token_version": 1})

    assert (await laptop.client.post("/csrf/refresh")).status_code == 401
    await update_user(env, "alice", token_version=1)
    assert (await laptop.client.get("/private")).status_code == 401
    assert await transport.manager.list_for_user(1) == []


async def test_an_access_token_ahead_of_its_account_is_refused_on_both_paths(
    make_env: Any,
) -> None:
    """A token from epoch 1 of an account the database puts back at epoch 0 is refused by the
    full check and by ``load_user=False`` (which re-reads the account once, then refuses)."""
    env = await make_env(transports=[BearerTransport(refresh="body")])
    auth = env.auth

    @env.app.get("/claims")
    async def claims(p: Principal = Depends(auth.current_user(load_user=False))) -> Any:
        return {"user_id": p.user_id}

    await sign_up(env.client)
    await update_user(env, "alice", token_version=1)
    tokens = await get_tokens(env.client)
    access = bearer(tokens["access_token"])
    assert (await env.client.get("/private", headers=access)).status_code == 200
    await update_user(env, "alice", token_version=0)
    for path in ("/private", "/claims"):
        r = await env.client.get(path, headers=access)
        assert r.status_code == 401, path
    r = await env.client.post("/refresh", json={"refresh_token": tokens["refresh_token"]})
    assert r.status_code == 401
