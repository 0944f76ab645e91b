"""The ``crudauth`` command: check a deployment, manage keys, users and sessions.

Every command finds the application's ``CRUDAuth`` from ``--app module.path:auth`` (or
``CRUDAUTH_APP``) and calls the services in ``crudauth.operations``; nothing here decides
anything on its own.
"""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import Awaitable, Callable, Coroutine
from datetime import datetime, timezone
from typing import Annotated, Any, TypeVar

import typer
from sqlalchemy.exc import SQLAlchemyError

from crudauth.auth import CRUDAuth
from crudauth.cli.loader import ENV_VAR, LoadError, load_auth, opened
from crudauth.errors import CrudAuthError, PasswordRejected
from crudauth.operations.admin import Operations, generate_secret
from crudauth.operations.doctor import Finding, diagnose
from crudauth.transports.base import own_session

T = TypeVar("T")

# No pretty tracebacks: they print local variables, and a password is one.
app = typer.Typer(
    pretty_exceptions_enable=False,
    help="Operate crudauth: check a deployment, manage keys, users and sessions.",
    no_args_is_help=True,
    add_completion=False,
)
keys_app = typer.Typer(help="The secret key ring.", no_args_is_help=True)
users_app = typer.Typer(
    help="Accounts: create, set a password, deactivate, unlock, revoke.", no_args_is_help=True
)
sessions_app = typer.Typer(
    help="Sessions: list a user's, purge expired rows.", no_args_is_help=True
)
app.add_typer(keys_app, name="keys")
app.add_typer(users_app, name="users")
app.add_typer(sessions_app, name="sessions")

AppOption = Annotated[
    str | None,
    typer.Option("--app", "-a", envvar=ENV_VAR, help="Import path of the CRUDAuth: module:attr."),
]


def _load(path: str | None) -> CRUDAuth:
    try:
        return load_auth(path)
    except LoadError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None


def _run(work: Coroutine[Any, Any, T]) -> T:
    """Run ``work``; a domain error is printed as one line and exits 1."""
    try:
        return asyncio.run(work)
    except CrudAuthError as exc:
        typer.echo(f"error: {_describe(exc)}", err=True)
        raise typer.Exit(1) from None
    except SQLAlchemyError as exc:
        # The class only: a statement's parameters may hold a password hash.
        cause = type(getattr(exc, "orig", None) or exc).__name__
        typer.echo(f"error: the database refused or failed ({cause})", err=True)
        raise typer.Exit(1) from None


def _describe(exc: CrudAuthError) -> str:
    if isinstance(exc, PasswordRejected):
        return "password rejected: " + "; ".join(str(e.get("msg", e)) for e in exc.errors)
    return exc.message


def _with_db(auth: CRUDAuth, action: Callable[[Operations, Any], Awaitable[T]]) -> T:
    async def work() -> T:
        async with opened(auth), own_session(auth.session) as db:
            return await action(Operations(auth), db)

    return _run(work())


def _read_password(confirm: bool) -> str:
    """From stdin when it is not a terminal (one line), else a hidden prompt; never argv."""
    if not sys.stdin.isatty():
        line = sys.stdin.readline().rstrip("\r\n")
        if not line:
            typer.echo("error: no password on stdin", err=True)
            raise typer.Exit(2)
        return line
    return str(typer.prompt("Password", hide_input=True, confirmation_prompt=confirm))


# -- doctor ----------------------------------------------------------------------------------


@app.command()
def doctor(
    app_path: Annotated[str | None, typer.Argument(metavar="APP", help="module:attr")] = None,
    app_option: AppOption = None,
    workers: Annotated[
        int,
        typer.Option(envvar="WEB_CONCURRENCY", min=1, help="Worker processes the deployment runs."),
    ] = 1,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Check a deployment: secrets, stores, Redis, the database, cookies, proxies, limits,
    hashing, clock skew. Exits 1 if any check fails."""
    auth = _load(app_path or app_option)
    findings = _run(_diagnose(auth, workers))
    if as_json:
        typer.echo(json.dumps([f.to_dict() for f in findings], indent=2))
    else:
        _print_findings(findings)
    if any(f.status == "fail" for f in findings):
        raise typer.Exit(1)


async def _diagnose(auth: CRUDAuth, workers: int) -> list[Finding]:
    try:
        return await diagnose(auth, workers=workers)
    finally:
        await auth.shutdown()


def _print_findings(findings: list[Finding]) -> None:
    width = max(len(f.check) for f in findings)
    for f in findings:
        typer.echo(f"{f.status.upper():<4}  {f.check:<{width}}  {f.detail}")
        if f.fix:
            typer.echo(f"{'':<4}  {'':<{width}}  fix: {f.fix}")
    counts = {s: sum(f.status == s for f in findings) for s in ("ok", "warn", "fail")}
    typer.echo(f"\n{counts['ok']} ok, {counts['warn']} warn, {counts['fail']} fail")


# -- keys ------------------------------------------------------------------------------------


@keys_app.command("generate")
def keys_generate() -> None:
    """Print a new random secret for SECRET_KEY (48 bytes, URL-safe)."""
    typer.echo(generate_secret())


@keys_app.command("status")
def keys_status(
    app_option: AppOption = None,
    rotated_at: Annotated[
        datetime | None,
        typer.Option(help="When the current key replaced the first fallback (ISO 8601, UTC)."),
    ] = None,
) -> None:
    """Which keys are in the ring, and when a fallback can be dropped."""
    auth = _load(app_option)
    if rotated_at is not None and rotated_at.tzinfo is None:
        rotated_at = rotated_at.replace(tzinfo=timezone.utc)
    status = Operations(auth).key_status(rotated_at)
    typer.echo(f"{status.keys} key(s); the first signs, every one verifies")
    for index, kid in enumerate(status.kids):
        typer.echo(f"  {'SECRET_KEY' if index == 0 else f'fallback {index}':<12} kid {kid}")
    typer.echo(
        "The stores keep only keyed hashes of session ids, so they cannot tell which key made "
        "one; a credential a retired key signed lives at most "
        f"{status.longest_lifetime} (longest session, refresh token or recovery link)."
    )
    if status.keys == 1:
        typer.echo("No fallback: nothing to drop.")
    elif status.safe_to_drop_at is None:
        typer.echo("Pass --rotated-at to learn when the fallbacks can go.")
    else:
        now = datetime.now(status.safe_to_drop_at.tzinfo)
        verdict = "safe now" if now >= status.safe_to_drop_at else "not yet"
        typer.echo(
            f"Fallbacks can be dropped from {status.safe_to_drop_at.isoformat()}: {verdict}."
        )


# -- users -----------------------------------------------------------------------------------

UserArgument = Annotated[str, typer.Argument(help="Username, email or id of the account.")]


@users_app.command("create")
def users_create(
    app_option: AppOption = None,
    username: Annotated[str | None, typer.Option(help="The username.")] = None,
    email: Annotated[str | None, typer.Option(help="The email address.")] = None,
    superuser: Annotated[bool, typer.Option("--superuser", help="Make it a superuser.")] = False,
) -> None:
    """Create an active account. The password is read from a prompt, or one line of stdin."""
    if not username and not email:
        typer.echo("error: give --username or --email", err=True)
        raise typer.Exit(2)
    auth = _load(app_option)
    password = _read_password(confirm=True)

    async def create(ops: Operations, db: Any) -> Any:
        user = await ops.create_user(
            db, password=password, username=username, email=email, superuser=superuser
        )
        return ops.repo.user_id(user)

    user_id = _with_db(auth, create)
    typer.echo(f"created {'superuser' if superuser else 'user'} {user_id}")


@users_app.command("set-password")
def users_set_password(user: UserArgument, app_option: AppOption = None) -> None:
    """Replace an account's password (prompt or stdin); every session and token ends."""
    auth = _load(app_option)
    password = _read_password(confirm=True)

    async def change(ops: Operations, db: Any) -> None:
        await ops.set_password(db, await ops.find_user(db, user), password)

    _with_db(auth, change)
    typer.echo(f"password set for {user}; its sessions and tokens ended")


@users_app.command("deactivate")
def users_deactivate(user: UserArgument, app_option: AppOption = None) -> None:
    """Refuse every sign-in of an account and end its sessions and tokens."""
    auth = _load(app_option)

    async def deactivate(ops: Operations, db: Any) -> int:
        return await ops.deactivate(db, await ops.find_user(db, user))

    ended = _with_db(auth, deactivate)
    typer.echo(f"deactivated {user}; {ended} session(s) and claim(s) ended")


@users_app.command("unlock")
def users_unlock(
    identifier: Annotated[str, typer.Argument(help="The identifier as it was typed.")],
    app_option: AppOption = None,
) -> None:
    """Clear the sign-in lockout of an identifier, its account and all the account's
    identifiers (address locks stay)."""
    auth = _load(app_option)

    async def unlock(ops: Operations, db: Any) -> bool:
        return await ops.unlock(db, identifier)

    found = _with_db(auth, unlock)
    typer.echo(f"unlocked {identifier}" + (" and its account" if found else " (no such account)"))


@users_app.command("revoke")
def users_revoke(user: UserArgument, app_option: AppOption = None) -> None:
    """End every session, refresh-token family and bearer token of an account."""
    auth = _load(app_option)

    async def revoke(ops: Operations, db: Any) -> int:
        return await ops.revoke(db, await ops.find_user(db, user))

    ended = _with_db(auth, revoke)
    typer.echo(f"revoked {user}: {ended} session(s) and claim(s) ended; its tokens are refused")


# -- sessions --------------------------------------------------------------------------------


@sessions_app.command("list")
def sessions_list(
    user: UserArgument,
    app_option: AppOption = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """An account's live sessions, most recent activity first (handles, never ids)."""
    auth = _load(app_option)

    async def listing(ops: Operations, db: Any) -> list[Any]:
        return await ops.list_sessions(await ops.find_user(db, user))

    lines = _with_db(auth, listing)
    if as_json:
        typer.echo(
            json.dumps(
                [
                    {
                        **vars(line),
                        **{
                            k: getattr(line, k).isoformat()
                            for k in ("created_at", "last_activity", "expires_at")
                        },
                    }
                    for line in lines
                ],
                indent=2,
            )
        )
        return
    for line in lines:
        typer.echo(
            f"{line.handle}  {line.transport}  active {line.last_activity:%Y-%m-%d %H:%M} "
            f"expires {line.expires_at:%Y-%m-%d %H:%M}  {line.ip_address or '-'}  "
            f"{(line.user_agent or '-')[:60]}"
        )
    typer.echo(f"{len(lines)} session(s)")


@sessions_app.command("purge")
def sessions_purge(
    app_option: AppOption = None,
    batch_size: Annotated[int, typer.Option(min=1, help="Rows per transaction.")] = 1000,
) -> None:
    """Delete expired rows of the SQL store (sessions, tokens, counters) in batches."""
    auth = _load(app_option)

    def progress(total: int) -> None:
        typer.echo(f"  {total} row(s) deleted so far")

    async def purge(ops: Operations, db: Any) -> int:
        return await ops.purge(batch_size=batch_size, progress=progress)

    total = _with_db(auth, purge)
    typer.echo(f"purged {total} expired row(s)")


def main() -> None:
    """The console script."""
    app(prog_name="crudauth")
