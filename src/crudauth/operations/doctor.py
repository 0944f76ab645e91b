"""``crudauth doctor``: the checks a deployment should pass, each with its fix.

``diagnose(auth, workers=...)`` returns one ``Finding`` per check: ``ok``, ``warn`` (works,
but weaker than it should be) or ``fail`` (unsafe or broken: the command exits non-zero so it
can gate a deploy). Checks that need a server (Redis, the database) connect to it; nothing is
written anywhere.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any, Literal, cast

from sqlalchemy import inspect, text

from crudauth.auth import CRUDAuth
from crudauth.storage.redis_support import text as as_text
from crudauth.transports.base import own_session
from crudauth.transports.session.transport import SessionTransport

Status = Literal["ok", "warn", "fail"]

#: OWASP Password Storage Cheat Sheet, argon2id: m=19 MiB, t=2, p=1 (or an equivalent
#: trade of memory for passes); below both is too cheap to guess against.
OWASP_ARGON2 = ((19_456, 2), (12_288, 3), (9_216, 4), (7_168, 5), (47_104, 1))
#: maxmemory policies that evict keys that have no TTL or a TTL: sessions and lockout counters
#: would vanish under memory pressure.
EVICTING = (
    "allkeys-lru",
    "allkeys-lfu",
    "allkeys-random",
    "volatile-lru",
    "volatile-lfu",
    "volatile-random",
    "volatile-ttl",
)
SKEW_WARN = 1.0
SKEW_FAIL = 30.0


@dataclass(frozen=True)
class Finding:
    check: str
    status: Status
    detail: str
    fix: str = ""

    def to_dict(self) -> dict[str, str]:
        return asdict(self)


def _ok(check: str, detail: str) -> Finding:
    return Finding(check, "ok", detail)


def check_secrets(auth: CRUDAuth) -> list[Finding]:
    ring = auth.runtime.keys
    out = [
        Finding(
            f"secret: {name}",
            "fail",
            problem,
            "use at least 32 random bytes: `crudauth keys generate`",
        )
        for name, problem in ring.problems()
    ]
    if not out:
        out.append(_ok("secret", f"{ring.size} key(s), each 32+ random bytes"))
    if ring.size > 1:
        out.append(
            Finding(
                "secret fallbacks",
                "warn",
                f"{ring.size - 1} fallback key(s) verify",
                "drop a fallback once `crudauth keys status` says it is safe",
            )
        )
    return out


def check_memory(auth: CRUDAuth, workers: int) -> Finding:
    parts = auth._parts.state.memory_parts()
    if not parts:
        return _ok("shared state", "no in-memory store: state is shared between workers")
    detail = f"in memory: {', '.join(parts)}"
    fix = "use redis_url=, redis_client= or database_store= on CRUDAuth"
    if workers > 1:
        return Finding("shared state", "fail", f"{detail}; {workers} workers expected", fix)
    return Finding("shared state", "warn", f"{detail}; fine for one worker only", fix)


def check_cookies(auth: CRUDAuth) -> list[Finding]:
    out = []
    for transport in auth.transports:
        if not transport.keeps_sessions:
            continue
        config = cast("SessionTransport", transport).cookies.config
        if not config.secure:
            out.append(
                Finding(
                    f"cookies ({transport.name})",
                    "fail",
                    "secure=False: cookies travel over plain HTTP",
                    "drop CookieConfig(secure=False) and serve over HTTPS",
                )
            )
        elif config.samesite == "none":
            out.append(
                Finding(
                    f"cookies ({transport.name})",
                    "warn",
                    "SameSite=None: sent on cross-site requests",
                    "use samesite='lax' unless a cross-site front end needs the cookie",
                )
            )
        else:
            out.append(
                _ok(
                    f"cookies ({transport.name})",
                    f"Secure, HttpOnly, SameSite={config.samesite.capitalize()}",
                )
            )
    return out


def check_proxies(auth: CRUDAuth) -> Finding:
    proxies = auth.runtime.proxies
    if proxies.hops == 0:
        return _ok(
            "client address",
            "trusted_proxy_hops=0: the socket peer is the client "
            "(set trusted_proxy_hops if a proxy or load balancer sits in front)",
        )
    if not proxies.networks:
        return Finding(
            "client address",
            "warn",
            f"trusted_proxy_hops={proxies.hops} believes {proxies.header} from any peer",
            "list your proxies' networks in trusted_proxies=[...] so a client that "
            "reaches the app directly cannot choose its address",
        )
    return _ok(
        "client address", f"{proxies.hops} hop(s) from {len(proxies.networks)} trusted network(s)"
    )


def check_production(auth: CRUDAuth) -> Finding:
    if auth.production:
        return _ok(
            "production mode", "on: weak secrets, memory stores and insecure cookies are refused"
        )
    return Finding(
        "production mode",
        "warn",
        "off: unsafe settings only log a warning",
        "CRUDAuth(production=True) or CRUDAUTH_ENV=production",
    )


def check_rate_limits(auth: CRUDAuth) -> Finding:
    off = sorted(name for name, limit in auth.rate_limits.items() if limit.disabled)
    if off:
        return Finding(
            "rate limits",
            "warn",
            f"disabled: {', '.join(off)}",
            "remove the RateLimit(0, ...) entries from rate_limits=",
        )
    return _ok("rate limits", f"{len(auth.rate_limits)} limits on")


def check_hashing(auth: CRUDAuth) -> Finding:
    m, t, p = auth.runtime.hasher.parameters()
    if any(m >= need_m and t >= need_t for need_m, need_t in OWASP_ARGON2):
        return _ok("password hashing", f"argon2id m={m} KiB, t={t}, p={p}")
    return Finding(
        "password hashing",
        "fail",
        f"argon2id m={m} KiB, t={t}, p={p} is below OWASP's",
        "PasswordHasher(memory_cost=19456, time_cost=2) or stronger (the default)",
    )


def redis_clients(auth: CRUDAuth) -> dict[str, Any]:
    """One client per Redis server the stores use, by address (``host:port/db``)."""
    found: dict[str, Any] = {}
    candidates = [
        auth.runtime.redis_client,
        getattr(auth.rate_limiter, "client", None),
        getattr(auth.tokens, "client", None),
    ]
    for transport in auth.transports:
        candidates += [getattr(store, "client", None) for store in transport.stores().values()]
    for client in candidates:
        if client is not None and hasattr(client, "info"):
            found.setdefault(_address(client), client)
    return found


def _address(client: Any) -> str:
    pool = getattr(client, "connection_pool", None)
    kwargs = getattr(pool, "connection_kwargs", None) or {}
    if "host" in kwargs:
        return f"{kwargs['host']}:{kwargs.get('port', 6379)}/{kwargs.get('db', 0)}"
    if "path" in kwargs:
        return f"{kwargs['path']}/{kwargs.get('db', 0)}"
    return f"client {id(client):#x}"


async def check_redis(client: Any, wall: Callable[[], float] = time.time) -> list[Finding]:
    try:
        info = await client.info("server")
        if "redis_version" not in info:  # cluster: one entry per node
            info = next(iter(info.values()), {})
        before = wall()
        seconds, micros = await client.time()
        after = wall()
    except Exception as exc:
        return [
            Finding(
                "redis",
                "fail",
                f"unreachable ({type(exc).__name__})",
                "check the URL, the network and the server",
            )
        ]
    version = as_text(info.get("redis_version", "0"))
    major = int(version.split(".")[0] or 0)
    out = [
        _ok("redis", f"reachable, version {version}")
        if major >= 7
        else Finding("redis", "fail", f"version {version}", "Redis 7 or newer is needed")
    ]
    out.append(await _maxmemory(client))
    skew = abs(float(seconds) + float(micros) / 1e6 - (before + after) / 2)
    status: Status = "ok" if skew < SKEW_WARN else "warn" if skew < SKEW_FAIL else "fail"
    out.append(
        Finding(
            "clock skew",
            status,
            f"{skew:.3f} s between this worker's clock and Redis TIME",
            "" if status == "ok" else "run NTP (chrony, systemd-timesyncd) on both hosts",
        )
    )
    return out


async def _maxmemory(client: Any) -> Finding:
    try:
        reply = await client.config_get("maxmemory-policy")
    except Exception as exc:
        return Finding(
            "redis maxmemory-policy",
            "warn",
            f"cannot read it ({type(exc).__name__})",
            "make sure it is noeviction (managed Redis: in the provider's settings)",
        )
    policy = as_text(next(iter(reply.values()), "unknown")) if reply else "unknown"
    if policy in EVICTING:
        return Finding(
            "redis maxmemory-policy",
            "warn",
            f"{policy}: under memory pressure Redis silently drops sessions and lockout counters",
            "CONFIG SET maxmemory-policy noeviction (and size maxmemory)",
        )
    return _ok("redis maxmemory-policy", policy)


async def check_database(auth: CRUDAuth) -> list[Finding]:
    wanted = [auth.repo.model.__table__]
    store = auth.runtime.database_store
    if store is not None:
        wanted += [store.sessions_table, store.store_table, store.counter_table]
    try:
        async with own_session(auth.session) as db:
            await db.execute(text("SELECT 1"))
            conn = await db.connection()
            present = set(await conn.run_sync(lambda sync: inspect(sync).get_table_names()))
    except Exception as exc:
        return [
            Finding(
                "database",
                "fail",
                f"unreachable ({type(exc).__name__})",
                "check the database URL, the network and the server",
            )
        ]
    missing = sorted(t.name for t in wanted if t.name not in present)
    if missing:
        return [
            _ok("database", "reachable"),
            Finding(
                "database tables",
                "fail",
                f"missing: {', '.join(missing)}",
                "create them: your migrations for the user table; DatabaseStore.create_tables() "
                "or a migration for crudauth's tables",
            ),
        ]
    return [_ok("database", f"reachable; tables present: {', '.join(t.name for t in wanted)}")]


async def diagnose(auth: CRUDAuth, *, workers: int = 1) -> list[Finding]:
    """Every check, in the order the command prints them."""
    findings = [
        *check_secrets(auth),
        check_memory(auth, workers),
        *check_cookies(auth),
        check_proxies(auth),
        check_production(auth),
        check_rate_limits(auth),
        check_hashing(auth),
    ]
    for address, client in redis_clients(auth).items():
        findings += [
            Finding(f"{f.check} ({address})", f.status, f.detail, f.fix)
            for f in await check_redis(client)
        ]
    findings += await check_database(auth)
    return findings
