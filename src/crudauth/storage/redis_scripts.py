"""The Redis session store's Lua scripts, and a record's encoding as HASH fields.

One JSON-encoded field per ``SessionRecord`` attribute (the key layout is described in
``redis.py``). The hot-path script ``_LOAD`` returns the values in ``_ORDER`` as one JSON
array, which ``_decode_loaded`` decodes positionally; its reply, like ``_GET``'s, names the key
it read (see ``redis_lane.py``).
"""

from __future__ import annotations

import json
from typing import Any

from crudauth.storage.base import SessionRecord
from crudauth.storage.redis_lane import bulk
from crudauth.storage.redis_support import Script, text

#: The record's fields in ``SessionRecord`` order: the hot-path script returns their values in
#: this order, so a record is decoded positionally, in one JSON parse.
_ORDER = tuple(SessionRecord.__dataclass_fields__)


def _at(name: str) -> int:
    return _ORDER.index(name) + 1  # Lua counts from 1


#: The hash field the per-user cap ranks by. Workers' clocks disagree, and a worker whose clock
#: is behind would rank the session it just created below the others and evict it; Redis's own
#: ``TIME``, read inside the scripts that create and slide a record, is one clock for all.
_RANKED_BY = "activity_us"

# The server's time in whole microseconds, as a string of digits (Lua's numbers would print
# it rounded).
_SERVER_US = """
local function server_us()
  local now = redis.call('TIME')
  return now[1] .. string.format('%06d', tonumber(now[2]))
end
"""

# KEYS[1] record; ARGV now, slide_after. Returns {KEYS[1], the values of _ORDER as one JSON
# array} (each field is stored JSON-encoded; null where one is missing; nil if the record is
# dead): the key binds the reply to its request (see ``redis_lane.py``). One
# HMGET inside the script (two commands per request in INFO commandstats: EVALSHA and HMGET);
# TIME, HSET and EXPIRE run only when the throttled slide is due.
_LOAD = Script(
    _SERVER_US
    + f"""
local values = redis.call('HMGET', KEYS[1], {", ".join(repr(name) for name in _ORDER)})
if not values[1] then return {{KEYS[1], false}} end
local last = tonumber(values[{_at("last_activity")}])
local idle = tonumber(values[{_at("idle_timeout")}])
local absolute = tonumber(values[{_at("absolute_expires_at")}])
local now = tonumber(ARGV[1])
if not (last and idle and absolute) or math.min(last + idle, absolute) <= now then
  redis.call('DEL', KEYS[1])
  return {{KEYS[1], false}}
end
if now - last >= tonumber(ARGV[2]) then
  redis.call('HSET', KEYS[1], 'last_activity', ARGV[1], '{_RANKED_BY}', server_us())
  redis.call('EXPIRE', KEYS[1], math.max(1, math.ceil(math.min(now + idle, absolute) - now)))
  values[{_at("last_activity")}] = ARGV[1]
end
for i = 1, {len(_ORDER)} do
  if not values[i] then values[i] = 'null' end
end
return {{KEYS[1], '[' .. table.concat(values, ',') .. ']'}}
"""
)

# KEYS[1] record; ARGV field, value, ... Updates only a record that still exists.
_UPDATE = Script(
    """
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
redis.call('HSET', KEYS[1], unpack(ARGV))
return 1
"""
)

# KEYS[1] record; ARGV ttl, field, value, ...
_CREATE = Script(
    _SERVER_US
    + f"""
redis.call('DEL', KEYS[1])
redis.call('HSET', KEYS[1], '{_RANKED_BY}', server_us(), unpack(ARGV, 2))
redis.call('EXPIRE', KEYS[1], ARGV[1])
return 1
"""
)

# KEYS[1] index, KEYS[2] the user's login counter (same slot); ARGV member, ttl.
# The score is a per-user sequence number: it breaks ties between records stamped in the same
# microsecond. Returns every member with its score.
_INDEX = Script(
    """
local seq = redis.call('INCR', KEYS[2])
redis.call('ZADD', KEYS[1], seq, ARGV[1])
for _, k in ipairs(KEYS) do
  if redis.call('EXPIRE', k, ARGV[2], 'GT') == 0 then redis.call('EXPIRE', k, ARGV[2], 'NX') end
end
return redis.call('ZRANGE', KEYS[1], 0, -1, 'WITHSCORES')
"""
)

# KEYS[1] record. Deletes it; returns {deleted (0/1), its user_id field or nil}: one round trip
# where HGET then DEL took two.
_TAKE_OWNER = Script(
    """
local owner = redis.call('HGET', KEYS[1], 'user_id')
return {redis.call('DEL', KEYS[1]), owner}
"""
)

#: The constant start of the hot-path command: EVALSHA, the script, one key (3 more arguments).
_LOAD_HEAD = b"*6\r\n" + bulk("EVALSHA") + bulk(_LOAD.sha) + bulk(1)

# KEYS[1] value. The per-request read of a single-use value, bound to its request like _LOAD.
_GET = Script("return {KEYS[1], redis.call('GET', KEYS[1])}")

# KEYS[1] value; ARGV expected, new value, ttl in ms.
_COMPARE_AND_SET = Script(
    """
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3])
return 1
"""
)

_FIELDS = frozenset(SessionRecord.__dataclass_fields__)


def _encode(record: SessionRecord) -> list[str]:
    flat: list[str] = []
    for name, value in record.to_dict().items():
        flat += [name, json.dumps(value)]
    return flat


def _decode(flat: list[Any]) -> SessionRecord:
    """A record from HGETALL's flat name/value list (device lists; not the hot path)."""
    items = iter(flat)
    data = {text(k): json.loads(text(v)) for k, v in zip(items, items, strict=True)}
    return SessionRecord(**{k: v for k, v in data.items() if k in _FIELDS})


def _decode_loaded(reply: Any) -> SessionRecord | None:
    """A record from the hot-path script's reply (``_ORDER`` as one JSON array), or ``None``
    for a dead or malformed one (a script reply is never trusted to be well formed)."""
    try:
        values = json.loads(reply) if reply else None
        if not isinstance(values, list) or not values or values[0] is None:
            return None
        return SessionRecord(*values)
    except (ValueError, TypeError):
        return None
