"""The conformance suites of the two store ports: ``SessionStore`` and ``KeyValueStore``."""

from __future__ import annotations

import asyncio

from crudauth.clock import FrozenClock
from crudauth.storage.base import KeyValueStore, SessionStore
from crudauth.testing.support import Advance, make_record, new_key


class SessionStoreConformance:
    """What every ``SessionStore`` must do."""

    async def test_create_then_load_round_trips(
        self, store: SessionStore, clock: FrozenClock
    ) -> None:
        record = make_record(clock)
        key = new_key()
        assert await store.create(key, record, max_per_user=5) == []
        loaded = await store.load(key, now=clock.now(), slide_after=60)
        assert loaded == record

    async def test_unknown_key_loads_nothing(self, store: SessionStore, clock: FrozenClock) -> None:
        assert await store.load(new_key(), now=clock.now(), slide_after=60) is None

    async def test_load_slides_only_when_due(self, store: SessionStore, clock: FrozenClock) -> None:
        record = make_record(clock)
        key = new_key()
        await store.create(key, record, max_per_user=5)
        early = await store.load(key, now=record.last_activity + 30, slide_after=60)
        assert early is not None and early.last_activity == record.last_activity
        due = await store.load(key, now=record.last_activity + 61, slide_after=60)
        assert due is not None and due.last_activity == record.last_activity + 61

    async def test_idle_deadline_kills_the_record(
        self, store: SessionStore, clock: FrozenClock
    ) -> None:
        record = make_record(clock, idle=100)
        key = new_key()
        await store.create(key, record, max_per_user=5)
        assert await store.load(key, now=record.last_activity + 101, slide_after=60) is None
        assert await store.load(key, now=record.last_activity + 1, slide_after=60) is None

    async def test_sliding_never_passes_the_absolute_limit(
        self, store: SessionStore, clock: FrozenClock
    ) -> None:
        record = make_record(clock, idle=100, absolute=250)
        key = new_key()
        await store.create(key, record, max_per_user=5)
        start = record.last_activity
        for step in (90, 180, 240):
            assert await store.load(key, now=start + step, slide_after=1) is not None
        assert await store.load(key, now=start + 250, slide_after=1) is None

    async def test_update_changes_only_named_fields(
        self, store: SessionStore, clock: FrozenClock
    ) -> None:
        record = make_record(clock)
        key = new_key()
        await store.create(key, record, max_per_user=5)
        assert await store.update(key, {"csrf_digest": "ab" * 32, "metadata": {"x": 1}})
        loaded = await store.load(key, now=clock.now(), slide_after=60)
        assert loaded is not None
        assert loaded.csrf_digest == "ab" * 32 and loaded.metadata == {"x": 1}
        assert loaded.handle == record.handle and loaded.user_id == record.user_id

    async def test_update_never_resurrects_a_deleted_record(
        self, store: SessionStore, clock: FrozenClock
    ) -> None:
        key = new_key()
        await store.create(key, make_record(clock), max_per_user=5)
        assert await store.delete(key) is True
        assert await store.update(key, {"metadata": {"sudo": True}}) is False
        assert await store.load(key, now=clock.now(), slide_after=60) is None

    async def test_delete_reports_existence_once(
        self, store: SessionStore, clock: FrozenClock
    ) -> None:
        key = new_key()
        await store.create(key, make_record(clock), max_per_user=5)
        assert await store.delete(key) is True
        assert await store.delete(key) is False

    async def test_cap_evicts_the_least_recently_active(
        self, store: SessionStore, clock: FrozenClock
    ) -> None:
        start = clock.now()
        keys = [new_key() for _ in range(3)]
        for offset, key in enumerate(keys):
            await store.create(key, make_record(clock, at=start + offset), max_per_user=3)
        # The oldest login is used again, so the second one is now the least recently active.
        assert await store.load(keys[0], now=start + 10, slide_after=1) is not None
        newest = new_key()
        evicted = await store.create(newest, make_record(clock, at=start + 11), max_per_user=3)
        assert evicted == [keys[1]]
        live = {k for k, _ in await store.list_for_user("1")}
        assert live == {keys[0], keys[2], newest}

    async def test_a_sign_in_on_a_clock_behind_keeps_its_session_and_evicts_the_least_recent(
        self, store: SessionStore, clock: FrozenClock
    ) -> None:
        # Workers' clocks disagree: the sign-in's worker runs ten minutes behind the worker that
        # served the user's other sessions. The cap ranks by the store's order of events, so
        # the session just created is the most recent one, not the oldest.
        behind = clock.now()
        ahead = behind + 600
        keys = [new_key() for _ in range(3)]
        for key in keys:
            await store.create(key, make_record(clock, at=ahead - 300, idle=1800), max_per_user=3)
        for key in (keys[0], keys[2]):  # the middle session goes quiet
            assert await store.load(key, now=ahead, slide_after=60) is not None
        newest = new_key()
        evicted = await store.create(
            newest, make_record(clock, at=behind, idle=1800), max_per_user=3
        )
        assert evicted == [keys[1]]
        live = {k for k, _ in await store.list_for_user("1")}
        assert live == {keys[0], keys[2], newest}

    async def test_a_slide_on_a_clock_behind_counts_as_the_latest_activity(
        self, store: SessionStore, clock: FrozenClock
    ) -> None:
        # The idle windows are long enough that either worker's clock sees every session live.
        behind = clock.now()
        ahead = behind + 600
        used = new_key()
        await store.create(used, make_record(clock, at=behind - 120, idle=1800), max_per_user=3)
        quiet = [new_key() for _ in range(2)]
        for key in quiet:
            await store.create(key, make_record(clock, at=ahead, idle=1800), max_per_user=3)
        # The worker behind serves the first session after the others signed in elsewhere.
        assert await store.load(used, now=behind, slide_after=60) is not None
        newest = new_key()
        evicted = await store.create(
            newest, make_record(clock, at=ahead + 1, idle=1800), max_per_user=3
        )
        assert evicted == [quiet[0]]
        live = {k for k, _ in await store.list_for_user("1")}
        assert live == {used, quiet[1], newest}

    async def test_zero_cap_means_unlimited(self, store: SessionStore, clock: FrozenClock) -> None:
        for _ in range(8):
            await store.create(new_key(), make_record(clock, user_id="u0"), max_per_user=0)
        assert len(await store.list_for_user("u0")) == 8

    async def test_users_are_isolated(self, store: SessionStore, clock: FrozenClock) -> None:
        a, b = new_key(), new_key()
        await store.create(a, make_record(clock, user_id="alice"), max_per_user=1)
        await store.create(b, make_record(clock, user_id="bob"), max_per_user=1)
        assert [k for k, _ in await store.list_for_user("alice")] == [a]
        assert await store.delete_for_user("alice") == 1
        assert await store.load(b, now=clock.now(), slide_after=60) is not None

    async def test_delete_for_user_keeps_the_named_session(
        self, store: SessionStore, clock: FrozenClock
    ) -> None:
        keys = [new_key() for _ in range(4)]
        for key in keys:
            await store.create(key, make_record(clock, user_id="7"), max_per_user=10)
        assert await store.delete_for_user("7", keep=keys[2]) == 3
        assert [k for k, _ in await store.list_for_user("7")] == [keys[2]]
        for key in keys:
            alive = await store.load(key, now=clock.now(), slide_after=60)
            assert (alive is not None) == (key == keys[2])

    async def test_concurrent_logins_leave_exactly_the_cap(
        self, store: SessionStore, clock: FrozenClock
    ) -> None:
        keys = [new_key() for _ in range(20)]
        await asyncio.gather(
            *(store.create(k, make_record(clock, user_id="burst"), max_per_user=5) for k in keys)
        )
        assert len(await store.list_for_user("burst")) == 5

    async def test_concurrent_logins_on_skewed_clocks_leave_exactly_the_cap(
        self, store: SessionStore, clock: FrozenClock
    ) -> None:
        start = clock.now()
        keys = [new_key() for _ in range(20)]
        await asyncio.gather(
            *(
                store.create(
                    k, make_record(clock, user_id="skew", at=start + (i * 37) % 11), max_per_user=5
                )
                for i, k in enumerate(keys)
            )
        )
        assert len(await store.list_for_user("skew")) == 5

    async def test_concurrent_update_and_delete_do_not_resurrect(
        self, store: SessionStore, clock: FrozenClock
    ) -> None:
        key = new_key()
        await store.create(key, make_record(clock), max_per_user=5)
        await asyncio.gather(
            *(store.update(key, {"metadata": {"n": i}}) for i in range(5)),
            store.delete(key),
            *(store.update(key, {"metadata": {"n": i}}) for i in range(5)),
        )
        assert await store.load(key, now=clock.now(), slide_after=60) is None
        assert await store.list_for_user("1") == []


class KeyValueStoreConformance:
    """What every ``KeyValueStore`` must do."""

    async def test_set_then_get(self, store: KeyValueStore) -> None:
        await store.set("a", "1", 60)
        assert await store.get("a") == "1"
        await store.set("a", "2", 60)
        assert await store.get("a") == "2"
        assert await store.get("missing") is None

    async def test_values_expire(self, store: KeyValueStore, advance: Advance) -> None:
        await store.set("short", "x", 0.2)
        await advance(0.4)
        assert await store.get("short") is None
        assert await store.get_and_delete("short") is None

    async def test_set_if_absent_stores_once(self, store: KeyValueStore, advance: Advance) -> None:
        assert await store.set_if_absent("once", "first", 0.2) is True
        assert await store.set_if_absent("once", "second", 60) is False
        assert await store.get("once") == "first"
        await advance(0.4)
        assert await store.set_if_absent("once", "third", 60) is True

    async def test_get_and_delete_consumes(self, store: KeyValueStore) -> None:
        await store.set("token", "v", 60)
        assert await store.get_and_delete("token") == "v"
        assert await store.get_and_delete("token") is None
        assert await store.get("token") is None

    async def test_concurrent_consume_succeeds_exactly_once(self, store: KeyValueStore) -> None:
        await store.set("race", "prize", 60)
        results = await asyncio.gather(*(store.get_and_delete("race") for _ in range(16)))
        assert [r for r in results if r is not None] == ["prize"]

    async def test_concurrent_set_if_absent_has_one_winner(self, store: KeyValueStore) -> None:
        results = await asyncio.gather(
            *(store.set_if_absent("claim", str(i), 60) for i in range(16))
        )
        assert results.count(True) == 1

    async def test_concurrent_sets_of_one_key_all_succeed(self, store: KeyValueStore) -> None:
        await asyncio.gather(*(store.set("same", str(i), 60) for i in range(20)))
        assert await store.get("same") in {str(i) for i in range(20)}

    async def test_compare_and_set_replaces_only_the_expected_value(
        self, store: KeyValueStore
    ) -> None:
        await store.set("family", "v1", 60)
        assert await store.compare_and_set("family", "stale", "v2", 60) is False
        assert await store.compare_and_set("family", "v1", "v2", 60) is True
        assert await store.get("family") == "v2"
        assert await store.compare_and_set("absent", "v1", "v2", 60) is False
        assert await store.get("absent") is None

    async def test_concurrent_compare_and_set_has_one_winner(self, store: KeyValueStore) -> None:
        await store.set("rotate", "current", 60)
        results = await asyncio.gather(
            *(store.compare_and_set("rotate", "current", f"next-{i}", 60) for i in range(16))
        )
        assert results.count(True) == 1

    async def test_delete(self, store: KeyValueStore) -> None:
        await store.set("gone", "v", 60)
        assert await store.delete("gone") is True
        assert await store.delete("gone") is False
