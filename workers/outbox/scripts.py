"""The outbox's Lua scripts: each step that changes a delivery's state is one atomic script.

All keys share the `{outbox}` hash tag (one Cluster slot). A delivery hash has `item` (the
deliverable's JSON), `channel`, `state` (`held`, `queued`, `sending`, `delivered`, `dead`,
`digested`), `claim` (bumped by every claim: a sender's fencing token), `attempts`,
`created`, `next_at`, `last_attempt`, `last_error`, `delivered_at`, `dead_at`, `silenced_by`
(state `silenced`: held by that silence, never sent), and listing fields `kind`, `rule`,
`feed`, `title`.
"""

from __future__ import annotations


def stamp(value: float) -> str:
    """Epoch seconds as a script argument that is also a valid JSON number (digests embed it)."""
    return f"{value:.6f}"

#: Queue a delivery unless its id exists: claimed for sending at once (`send`: `{'claimed'}`),
#: queued due now for whichever worker has a free slot (`queue`: `{'queued'}`), or held for the
#: channel's next digest (`hold`: `{'held'}`), or recorded as held by a silence whose id is
#: `reason` (`silence`: `{'silenced'}`, never sent, expiring after `silenced_ttl`);
#: rate-limited channels count sends atomically.
#: KEYS: delivery, due, recent, held list, hold hash, held channels, rate counter.
#: ARGV: id, item, channel, now, action, lease_until, due, reason, keep_due, limit, rate_ttl,
#: rate_due, rate_reason, recent_cap, kind, rule, feed, title, silenced_ttl.
ENQUEUE = """
if redis.call('EXISTS', KEYS[1]) == 1 then return {'exists'} end
local action, due, reason, keep = ARGV[5], ARGV[7], ARGV[8], ARGV[9]
local limit = tonumber(ARGV[10])
if action ~= 'hold' and action ~= 'silence' and limit > 0 then
  local sent = redis.call('INCR', KEYS[7])
  if sent == 1 then redis.call('EXPIRE', KEYS[7], ARGV[11]) end
  if sent > limit then action, due, reason, keep = 'hold', ARGV[12], ARGV[13], '0' end
end
redis.call('HSET', KEYS[1], 'item', ARGV[2], 'channel', ARGV[3], 'created', ARGV[4],
  'attempts', 0, 'claim', 0, 'kind', ARGV[15], 'rule', ARGV[16], 'feed', ARGV[17],
  'title', ARGV[18])
redis.call('ZADD', KEYS[3], ARGV[4], ARGV[1])
redis.call('ZREMRANGEBYRANK', KEYS[3], 0, -(tonumber(ARGV[14]) + 1))
if action == 'silence' then
  redis.call('HSET', KEYS[1], 'state', 'silenced', 'silenced_by', reason)
  redis.call('EXPIRE', KEYS[1], ARGV[19])
  return {'silenced'}
end
if action == 'hold' then
  redis.call('HSET', KEYS[1], 'state', 'held', 'reason', reason)
  redis.call('RPUSH', KEYS[4], ARGV[1])
  local current = redis.call('HGET', KEYS[5], 'due')
  if not current or (keep == '0' and tonumber(due) > tonumber(current)) then
    redis.call('HSET', KEYS[5], 'due', due)
  end
  redis.call('HSETNX', KEYS[5], 'since', ARGV[4])
  redis.call('HSET', KEYS[5], 'r:' .. reason, 1)
  redis.call('SADD', KEYS[6], ARGV[3])
  return {'held'}
end
if action == 'queue' then
  redis.call('HSET', KEYS[1], 'state', 'queued', 'next_at', ARGV[4])
  redis.call('ZADD', KEYS[2], ARGV[4], ARGV[1])
  return {'queued'}
end
redis.call('HSET', KEYS[1], 'state', 'sending', 'claim', 1, 'next_at', ARGV[4])
redis.call('ZADD', KEYS[2], ARGV[6], ARGV[1])
return {'claimed', '1'}
"""

#: Claim up to `limit` due deliveries: each gets a new claim token and its due time moves to
#: the end of the sender's lease (so a sender that dies is replaced after the lease).
#: Deliveries no longer queued or sending are dropped from the due set.
#: KEYS: due. ARGV: now, lease_until, limit, delivery key prefix.
#: Returns a flat list: id, claim, item, ...
CLAIM = """
local ids = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, ARGV[3])
local out = {}
for _, id in ipairs(ids) do
  local k = ARGV[4] .. id
  local state = redis.call('HGET', k, 'state')
  if state == 'queued' or state == 'sending' then
    local claim = redis.call('HINCRBY', k, 'claim', 1)
    redis.call('HSET', k, 'state', 'sending')
    redis.call('ZADD', KEYS[1], ARGV[2], id)
    table.insert(out, id)
    table.insert(out, tostring(claim))
    table.insert(out, redis.call('HGET', k, 'item'))
  else
    redis.call('ZREM', KEYS[1], id)
  end
end
return out
"""

#: Keep a delivery's lease: only while the caller's claim is still the current one (no other
#: sender took it meanwhile), push its due time to the new lease end.
#: KEYS: delivery, due. ARGV: id, claim, lease_until. Returns 1 if still held, else 0.
RENEW = """
local k = KEYS[1]
if redis.call('HGET', k, 'state') ~= 'sending' or redis.call('HGET', k, 'claim') ~= ARGV[2] then
  return 0
end
redis.call('ZADD', KEYS[2], ARGV[3], ARGV[1])
return 1
"""

#: Record the outcome of a send: `delivered` (always recorded: success is success), or, only
#: by the current claim holder, `retry` (queued again at next_due), `dead`, or `release`
#: (handed back unsent at shutdown, no attempt counted).
#: KEYS: delivery, due, dead. ARGV: id, claim, outcome, now, next_due, error, ttl.
RESULT = """
local k = KEYS[1]
if redis.call('EXISTS', k) == 0 then return 'missing' end
local state = redis.call('HGET', k, 'state')
if state == 'delivered' then return 'already' end
if ARGV[3] == 'delivered' then
  redis.call('HINCRBY', k, 'attempts', 1)
  redis.call('HSET', k, 'state', 'delivered', 'delivered_at', ARGV[4], 'last_attempt', ARGV[4])
  redis.call('ZREM', KEYS[2], ARGV[1])
  redis.call('ZREM', KEYS[3], ARGV[1])
  redis.call('EXPIRE', k, ARGV[7])
  return 'ok'
end
if state ~= 'sending' or redis.call('HGET', k, 'claim') ~= ARGV[2] then return 'stale' end
if ARGV[3] == 'release' then
  redis.call('HSET', k, 'state', 'queued', 'next_at', ARGV[4])
  redis.call('ZADD', KEYS[2], ARGV[4], ARGV[1])
  return 'ok'
end
redis.call('HINCRBY', k, 'attempts', 1)
redis.call('HSET', k, 'last_error', ARGV[6], 'last_attempt', ARGV[4])
if ARGV[3] == 'retry' then
  redis.call('HSET', k, 'state', 'queued', 'next_at', ARGV[5])
  redis.call('ZADD', KEYS[2], ARGV[5], ARGV[1])
else
  redis.call('HSET', k, 'state', 'dead', 'dead_at', ARGV[4])
  redis.call('ZREM', KEYS[2], ARGV[1])
  redis.call('ZADD', KEYS[3], ARGV[4], ARGV[1])
  redis.call('EXPIRE', k, ARGV[7])
end
return 'ok'
"""

#: When a channel's hold is due, turn up to `max_items` held deliveries into one digest
#: delivery queued now (a single held delivery is queued as itself). Returns {} when nothing
#: is due, {'single', id} or {'digest', id}.
#: KEYS: held list, hold hash, held channels, due, recent.
#: ARGV: channel, now, max_items, delivery key prefix, ttl.
FLUSH = """
local due = redis.call('HGET', KEYS[2], 'due')
if not due then
  if redis.call('LLEN', KEYS[1]) == 0 then
    redis.call('SREM', KEYS[3], ARGV[1])
    return {}
  end
  due = ARGV[2]
end
if tonumber(due) > tonumber(ARGV[2]) then return {} end
local ids = redis.call('LRANGE', KEYS[1], 0, tonumber(ARGV[3]) - 1)
redis.call('LTRIM', KEYS[1], #ids, -1)
local since = redis.call('HGET', KEYS[2], 'since') or ARGV[2]
local reasons = {}
for _, field in ipairs(redis.call('HKEYS', KEYS[2])) do
  if string.sub(field, 1, 2) == 'r:' then table.insert(reasons, string.sub(field, 3)) end
end
table.sort(reasons)
if redis.call('LLEN', KEYS[1]) == 0 then
  redis.call('DEL', KEYS[2])
  redis.call('SREM', KEYS[3], ARGV[1])
else
  redis.call('HSET', KEYS[2], 'due', ARGV[2], 'since', ARGV[2])
end
local items, kept = {}, {}
for _, id in ipairs(ids) do
  local k = ARGV[4] .. id
  local item = redis.call('HGET', k, 'item')
  if item and redis.call('HGET', k, 'state') == 'held' then
    table.insert(items, item)
    table.insert(kept, id)
  end
end
if #kept == 0 then return {} end
if #kept == 1 then
  redis.call('HSET', ARGV[4] .. kept[1], 'state', 'queued', 'next_at', ARGV[2])
  redis.call('ZADD', KEYS[4], ARGV[2], kept[1])
  return {'single', kept[1]}
end
local reason = table.concat(reasons, '; ')
local did = 'lw_dg_' .. string.sub(redis.sha1hex(ARGV[1] .. '|' .. table.concat(kept, ',')), 1, 32)
local body = '{"type":"digest","id":"' .. did .. '","channel":' .. cjson.encode(ARGV[1]) ..
  ',"since":' .. since .. ',"until":' .. ARGV[2] .. ',"reason":' .. cjson.encode(reason) ..
  ',"items":[' .. table.concat(items, ',') .. ']}'
for _, id in ipairs(kept) do
  local k = ARGV[4] .. id
  redis.call('HSET', k, 'state', 'digested', 'digest', did)
  redis.call('EXPIRE', k, ARGV[5])
end
local dk = ARGV[4] .. did
redis.call('HSET', dk, 'item', body, 'channel', ARGV[1], 'created', ARGV[2], 'attempts', 0,
  'claim', 0, 'state', 'queued', 'next_at', ARGV[2], 'kind', 'digest', 'rule', '', 'feed', '',
  'title', #kept .. ' items (' .. reason .. ')')
redis.call('ZADD', KEYS[4], ARGV[2], did)
redis.call('ZADD', KEYS[5], ARGV[2], did)
return {'digest', did}
"""

#: Queue a dead delivery again (its give-up clock restarts). Returns 1, or 0 if not dead.
#: KEYS: delivery, due, dead. ARGV: id, now.
REQUEUE = """
if redis.call('HGET', KEYS[1], 'state') ~= 'dead' then return 0 end
redis.call('HSET', KEYS[1], 'state', 'queued', 'created', ARGV[2], 'attempts', 0,
  'next_at', ARGV[2])
redis.call('HINCRBY', KEYS[1], 'requeued', 1)
redis.call('PERSIST', KEYS[1])
redis.call('ZREM', KEYS[3], ARGV[1])
redis.call('ZADD', KEYS[2], ARGV[2], ARGV[1])
return 1
"""
