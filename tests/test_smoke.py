from tests.conftest import login, register


async def test_register_login_me_logout(make_env):
    env = await make_env()
    r = await register(env.client)
    assert r.status_code == 200, r.text
    assert r.json()["username"] == "alice"
    r = await login(env.client)
    assert r.status_code == 200, r.text
    csrf = r.json()["csrf_token"]
    r = await env.client.get("/me")
    assert r.status_code == 200, r.text
    assert r.json()["via"] == "session"
    r = await env.client.post("/logout")
    assert r.status_code == 403
    r = await env.client.post("/logout", headers={"X-CSRF-Token": csrf})
    assert r.status_code == 200, r.text
    r = await env.client.get("/me")
    assert r.status_code == 401
