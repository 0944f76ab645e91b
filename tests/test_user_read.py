"""``UserRepository.get`` reads the row ``Session.get`` would, in the same session.

Every authenticated request reads its user through ``UserRepository.get``. A row that is not in
the session's identity map is read with one statement built at startup instead of
``Session.get``'s per-call ``SELECT`` (docs/performance.md); these tests hold it to what
``Session.get`` returns in every case the ORM distinguishes, on SQLite and PostgreSQL.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from typing import Any, ClassVar

import pytest
from sqlalchemy import ForeignKey, Integer, String, event, update
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker
from sqlalchemy.orm import (
    DeclarativeBase,
    Mapped,
    ORMExecuteState,
    Session,
    mapped_column,
    relationship,
    with_loader_criteria,
)

from crudauth import AuthUserMixin
from crudauth.identity.config import IdentityConfig
from crudauth.identity.repository import UserRepository
from tests.conftest import _engine


class _Base(DeclarativeBase):
    pass


class _Member(AuthUserMixin, _Base):
    __tablename__ = "user_read_members"
    kind: Mapped[str] = mapped_column(String(20), default="member")
    # A collection loaded by a join: ``Session.get`` de-duplicates the joined rows.
    badges: Mapped[list[_Badge]] = relationship(lazy="joined", order_by="_Badge.id")
    __mapper_args__: ClassVar[dict[str, Any]] = {
        "polymorphic_on": "kind",
        "polymorphic_identity": "member",
    }


class _Staff(_Member):
    __mapper_args__: ClassVar[dict[str, Any]] = {"polymorphic_identity": "staff"}


class _Badge(_Base):
    __tablename__ = "user_read_badges"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    member_id: Mapped[int] = mapped_column(ForeignKey("user_read_members.id"))
    name: Mapped[str] = mapped_column(String(40))


class _PublicIdUser(_Base):
    """The logical id mapped to a unique column that is not the primary key."""

    __tablename__ = "user_read_public_ids"
    pk: Mapped[int] = mapped_column(Integer, primary_key=True)
    public_id: Mapped[int] = mapped_column(Integer, unique=True)
    email: Mapped[str] = mapped_column(String(255), unique=True)
    hashed_password: Mapped[str] = mapped_column(String(255))


def _member(user_id: int, **values: Any) -> dict[str, Any]:
    return {
        "id": user_id,
        "username": f"u{user_id}",
        "username_key": f"u{user_id}",
        "email": f"u{user_id}@example.com",
        "hashed_password": "x",
        "is_active": True,
        "is_superuser": False,
        "email_verified": False,
        "token_version": 0,
        "kind": "member",
        **values,
    }


@pytest.fixture
async def engine(database_url: str) -> AsyncIterator[AsyncEngine]:
    engine = _engine(database_url)
    async with engine.begin() as conn:
        await conn.run_sync(_Base.metadata.drop_all)
        await conn.run_sync(_Base.metadata.create_all)
        await conn.execute(
            _Member.__table__.insert(),
            [_member(1), _member(2, kind="staff"), _member(3, is_active=False)],
        )
        await conn.execute(
            _Badge.__table__.insert(),
            [{"id": 1, "member_id": 1, "name": "a"}, {"id": 2, "member_id": 1, "name": "b"}],
        )
        await conn.execute(
            _PublicIdUser.__table__.insert(),
            [{"pk": 1, "public_id": 2, "email": "p@example.com", "hashed_password": "x"}],
        )
    yield engine
    async with engine.begin() as conn:
        await conn.run_sync(_Base.metadata.drop_all)
    await engine.dispose()


@pytest.fixture
def sessions(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return async_sessionmaker(engine, expire_on_commit=False)


@contextmanager
def statements(engine: AsyncEngine) -> Iterator[list[str]]:
    sent: list[str] = []

    def count(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        sent.append(statement)

    event.listen(engine.sync_engine, "before_cursor_execute", count)
    try:
        yield sent
    finally:
        event.remove(engine.sync_engine, "before_cursor_execute", count)


def _columns(user: Any) -> dict[str, Any]:
    return {c.key: getattr(user, c.key) for c in _Member.__table__.columns}


async def test_the_read_is_the_row_session_get_loads(
    engine: AsyncEngine, sessions: async_sessionmaker[AsyncSession]
) -> None:
    repo = UserRepository(_Member)
    async with sessions() as plain:
        expected = await plain.get(_Member, 1)
    async with sessions() as db:
        with statements(engine) as sent:
            user = await repo.get(db, "1")  # a cookie or token carries the id as text
        assert len(sent) == 1
        assert user in db  # loaded into the request's session, as the route's own reads are
        assert _columns(user) == _columns(expected)
        with statements(engine) as sent:
            assert await db.get(_Member, 1) is user
        assert sent == []


async def test_the_read_does_not_go_through_session_get(
    sessions: async_sessionmaker[AsyncSession], monkeypatch: pytest.MonkeyPatch
) -> None:
    def refuse(*_: Any, **__: Any) -> Any:
        raise AssertionError("Session.get called for a row outside the identity map")

    # (``Session.get``'s worker: patching ``get`` itself would read as an app's override.)
    monkeypatch.setattr(Session, "_get_impl", refuse)
    async with sessions() as db:
        user = await UserRepository(_Member).get(db, 1)
        assert user is not None and user.id == 1


async def test_a_row_the_session_holds_is_returned_without_sql(
    engine: AsyncEngine, sessions: async_sessionmaker[AsyncSession]
) -> None:
    repo = UserRepository(_Member)
    async with sessions() as db:
        first = await db.get(_Member, 1)
        with statements(engine) as sent:
            assert await repo.get(db, 1) is first
        assert sent == []


async def test_an_expired_row_is_refreshed_like_session_get(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    repo = UserRepository(_Member)
    async with sessions() as db:
        user = await repo.get(db, 1)
        assert user is not None and user.token_version == 0
        async with sessions() as other:
            await other.execute(update(_Member).where(_Member.id == 1).values(token_version=4))
            await other.commit()
        assert (await repo.get(db, 1)).token_version == 0  # held: no query, like db.get
        db.expire(user)
        again = await repo.get(db, 1)
        assert again is user and again.token_version == 4


async def test_a_pending_row_is_flushed_and_returned_like_session_get(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    async with sessions() as db:
        pending = _Member(**_member(9))
        db.add(pending)
        assert await UserRepository(_Member).get(db, 9) is pending  # autoflush, as db.get
        await db.rollback()


@pytest.mark.parametrize("user_id", [404, "404", "not a number", None])
async def test_no_row_reads_as_none(
    sessions: async_sessionmaker[AsyncSession], user_id: Any
) -> None:
    async with sessions() as db:
        assert await UserRepository(_Member).get(db, user_id) is None


async def test_a_joined_collection_comes_back_once_per_row(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    async with sessions() as db:
        user = await UserRepository(_Member).get(db, 1)
        assert [badge.name for badge in user.badges] == ["a", "b"]


async def test_a_polymorphic_row_is_its_subclass(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    async with sessions() as plain:
        expected = type(await plain.get(_Member, 2))
    async with sessions() as db:
        user = await UserRepository(_Member).get(db, 2)
    assert type(user) is expected is _Staff


async def test_a_loader_criterion_applies_as_to_session_get(
    engine: AsyncEngine, sessions: async_sessionmaker[AsyncSession]
) -> None:
    """An app that hides rows with ``do_orm_execute`` (soft delete, tenants) hides them from
    authentication too."""

    def only_active(state: ORMExecuteState) -> None:
        if state.is_select:
            state.statement = state.statement.options(
                with_loader_criteria(_Member, _Member.is_active.is_(True))
            )

    event.listen(Session, "do_orm_execute", only_active)
    try:
        async with sessions() as plain:
            assert await plain.get(_Member, 3) is None
        async with sessions() as db:
            assert await UserRepository(_Member).get(db, 3) is None
            assert await UserRepository(_Member).get(db, 1) is not None
    finally:
        event.remove(Session, "do_orm_execute", only_active)


async def test_an_id_that_is_not_the_primary_key_reads_as_before(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    """Only the table's one primary key column gets the prepared statement; anything else
    keeps ``db.get``'s answer."""
    repo = UserRepository(
        _PublicIdUser, IdentityConfig(login=("email",)), column_map={"id": "public_id"}
    )
    async with sessions() as plain, sessions() as db:
        assert await repo.get(db, 1) is not None
        assert (await repo.get(db, 1)).pk == (await plain.get(_PublicIdUser, 1)).pk
        assert await repo.get(db, 2) is None


class _HidingSession(Session):
    """An app's session whose ``get`` hides deactivated rows."""

    def get(self, entity: Any, ident: Any, **kwargs: Any) -> Any:
        found = super().get(entity, ident, **kwargs)
        return None if found is not None and not found.is_active else found


async def test_a_session_class_with_its_own_get_keeps_it(engine: AsyncEngine) -> None:
    sessions = async_sessionmaker(engine, sync_session_class=_HidingSession)
    async with sessions() as db:
        assert await db.get(_Member, 3) is None
        assert await UserRepository(_Member).get(db, 3) is None
        assert await UserRepository(_Member).get(db, 1) is not None


class _TenantSession(AsyncSession):
    """An app's session that narrows every statement it executes (here: to one tenant)."""

    async def execute(self, statement: Any, *args: Any, **kwargs: Any) -> Any:
        return await super().execute(statement.where(_Member.kind == "staff"), *args, **kwargs)


async def test_a_session_class_with_its_own_execute_reads_as_session_get(
    engine: AsyncEngine,
) -> None:
    """``Session.get`` never went through an ``AsyncSession.execute`` wrapper; the read must
    not start to."""
    sessions = async_sessionmaker(engine, class_=_TenantSession)
    async with sessions() as db:
        assert await db.get(_Member, 1) is not None
        assert await UserRepository(_Member).get(db, 1) is not None


async def test_a_sharded_session_keeps_its_identity_lookup(engine: AsyncEngine) -> None:
    """Horizontal sharding keys held rows by shard: a row the session holds is returned
    without a query on every shard, as ``Session.get`` does."""
    from sqlalchemy.ext.horizontal_shard import ShardedSession

    sessions = async_sessionmaker(
        sync_session_class=ShardedSession,
        shards={"main": engine.sync_engine},
        shard_chooser=lambda *_, **__: "main",
        identity_chooser=lambda *_, **__: ["main"],
        execute_chooser=lambda *_: ["main"],
    )
    async with sessions() as db:
        held = await db.get(_Member, 1)
        with statements(engine) as sent:
            assert await UserRepository(_Member).get(db, 1) is held
        assert sent == []
