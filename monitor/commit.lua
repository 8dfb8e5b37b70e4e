-- Record a feed's diff and append its events to the stream in one atomic step.
-- KEYS: 1 fingerprints hash, 2 texts hash, 3 order zset, 4 meta hash, 5 events stream,
--       6 notices stream, 7 fence counter (see monitor/lease.py)
-- ARGV: 1 baseline ('1' first sight, '0' otherwise), 2 max entries kept, 3 stream maxlen,
--       4 etag, 5 last-modified, 6 body hash, 7 number of changes, 8 an operator notice
--       to append ('' for none: the flood breaker's goes with its diff), 9 the poller's
--       fencing token ('' when polling without a lease), then per change:
--       id, expected previous version ('' when new), version, texts JSON, emit ('1'/'0'), event
-- A token that is no longer the feed's newest (the lease ran out mid-poll and another poller
-- took it) refuses the whole commit. Each change is applied only if the stored version still
-- equals the expected one (a compare-and-set), so a second poller or a retried commit can
-- never duplicate an event.
-- Returns {new events, updated events, skipped changes}, {-1, 0, 0} when the baseline state
-- moved, or {-2, 0, 0} when the fencing token was superseded (nothing written).
if ARGV[9] ~= '' and redis.call('GET', KEYS[7]) ~= ARGV[9] then
  return {-2, 0, 0}
end
local baselined = redis.call('HGET', KEYS[4], 'baselined')
if (ARGV[1] == '1') == (baselined == '1') then
  return {-1, 0, 0}
end
local seq = tonumber(redis.call('HGET', KEYS[4], 'seq') or '0')
local new, updated, skipped = 0, 0, 0
local base = 10
for _ = 1, tonumber(ARGV[7]) do
  local id, expected, version = ARGV[base], ARGV[base + 1], ARGV[base + 2]
  local current = redis.call('HGET', KEYS[1], id) or ''
  if current == expected then
    redis.call('HSET', KEYS[1], id, version)
    redis.call('HSET', KEYS[2], id, ARGV[base + 3])
    if expected == '' then
      seq = seq + 1
      redis.call('ZADD', KEYS[3], seq, id)
    end
    if ARGV[base + 4] == '1' then
      redis.call('XADD', KEYS[5], 'MAXLEN', '~', ARGV[3], '*', 'event', ARGV[base + 5])
      if expected == '' then new = new + 1 else updated = updated + 1 end
    end
  else
    skipped = skipped + 1
  end
  base = base + 6
end
local excess = redis.call('ZCARD', KEYS[3]) - tonumber(ARGV[2])
while excess > 0 do
  local batch = math.min(excess, 500)
  local old = redis.call('ZRANGE', KEYS[3], 0, batch - 1)
  redis.call('ZREMRANGEBYRANK', KEYS[3], 0, batch - 1)
  redis.call('HDEL', KEYS[1], unpack(old))
  redis.call('HDEL', KEYS[2], unpack(old))
  excess = excess - batch
end
redis.call('HSET', KEYS[4], 'baselined', '1', 'seq', seq, 'body_hash', ARGV[6])
if ARGV[8] ~= '' then
  redis.call('XADD', KEYS[6], 'MAXLEN', '~', 10000, '*', 'notice', ARGV[8])
end
for i, field in ipairs({'etag', 'last_modified'}) do
  if ARGV[3 + i] == '' then
    redis.call('HDEL', KEYS[4], field)
  else
    redis.call('HSET', KEYS[4], field, ARGV[3 + i])
  end
end
return {new, updated, skipped}
