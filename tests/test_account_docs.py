"""docs/account.md: its example (examples/docs/account.py) is shown verbatim and runs."""

from pathlib import Path

from tests.test_docs_examples import Loader, load_example, login, register, serve

ROOT = Path(__file__).resolve().parents[1]
PASSWORD = "correct horse battery 9"
NEW = "another long passphrase"

__all__ = ["load_example"]  # the fixture, re-used from the examples suite


def test_the_page_shows_the_example_verbatim() -> None:
    page = (ROOT / "docs" / "account.md").read_text()
    example = (ROOT / "examples" / "docs" / "account.py").read_text().strip()
    assert example in page


async def test_account_example(load_example: Loader) -> None:
    example = load_example("account")
    async with serve(example) as new_client:
        laptop, phone = new_client(), new_client()
        r = await register(laptop, email="alice@example.com", username="alice")
        assert r.status_code == 200, r.text
        # The policy: common passwords and the user's own names are refused.
        for weak in ("1q2w3e4r5t6y", "bobby-is-great!", "my example password"):
            r = await register(laptop, email="b@example.com", username="bobby", password=weak)
            assert r.status_code == 422, weak

        csrf = (await login(laptop, "alice")).json()["csrf_token"]
        headers = {"X-CSRF-Token": csrf}
        assert (await login(phone, "alice")).status_code == 200

        # Device list, by handle.
        sessions = (await laptop.get("/sessions")).json()
        assert len(sessions) == 2
        other = next(s for s in sessions if not s["current"])

        # Sudo gate: refused, then allowed after POST /sudo (which renews the CSRF token).
        r = await laptop.post("/account/delete", headers=headers)
        assert (r.status_code, r.json()["detail"]) == (403, "Re-authentication required.")
        r = await laptop.post("/sudo", json={"password": PASSWORD}, headers=headers)
        assert r.status_code == 200, r.text
        headers = {"X-CSRF-Token": r.json()["csrf_token"]}

        # Change the password: the phone is signed out, the laptop is not.
        r = await laptop.post(
            "/change-password",
            json={"current_password": PASSWORD, "new_password": NEW},
            headers=headers,
        )
        assert r.json() == {"detail": "Password changed."}
        assert (await phone.get("/me")).status_code == 401
        assert (await laptop.get("/me")).status_code == 200
        r = await laptop.delete(f"/sessions/{other['id']}", headers=headers)
        assert r.status_code == 404  # already ended by the password change

        r = await laptop.post("/account/delete", headers=headers)
        assert r.json() == {"detail": "Account closed."}
        assert (await laptop.get("/me")).status_code == 401
