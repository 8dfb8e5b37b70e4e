-- Apply a parsed document's plan (monitor/poll/decide.py) in one atomic step: the diff's
-- fingerprints, texts and events, the feed's meta and validators, its health, and the poller's
-- lease (goodpoll.lua is prepended; a 304 or an unchanged body goes through quiet.lua).
-- KEYS: 1 fingerprints hash, 2 texts hash, 3 order zset, 4 meta hash, 5 events stream,
--       6 notices stream, 7 fence counter, 8 health hash, 9 lease, 10 lease wanted flag
--       (see monitor/poll/lease.py)
-- ARGV: 1 baseline ('1' first sight, '0' otherwise), 2 max entries kept, 3 stream maxlen,
--       4 etag, 5 last-modified ('' deletes either), 6 body hash, 7 an operator notice to
--       append ('' for none), 8 the poller's fencing token ('' when polling without a
--       lease), 9 now, 10 health status, 11 kind parsed ('' none), 12 track the most events
--       in one poll ('1'/'0': not while the flood breaker holds them), 13 lease value
--       `owner fence` ('' without a lease), 14 ms to hold the lease when nobody else wants
--       it, 15 ms to hold it when another poller asked for it (<= 0: release), 16 the next
--       poll's time ('' unknown), 17 number of meta fields m, 18 number of changes n, then m
--       field/value pairs, then per change: id, expected previous version ('' when new),
--       version, texts JSON, emit ('1'/'0'), event
-- A token that is no longer the feed's newest (another poller took the feed) refuses the
-- whole plan. Each change is applied only if the stored version still equals the expected one
-- (a compare-and-set), so a second poller or a retried commit never duplicates an event. An
-- edit's event carries the texts it replaces (`previous`), read here as they are replaced.
-- Returns {new, updated, skipped, lease, failures before, failing since, recovered}: lease 1
-- held for the next turn, 2 handed over (held shorter, or released), 0 no lease;
-- {-1} when the baseline state moved (nothing written), {-2} when superseded.
if ARGV[8] ~= '' and redis.call('GET', KEYS[7]) ~= ARGV[8] then
  return {-2}
end
if (ARGV[1] == '1') == (redis.call('HGET', KEYS[4], 'baselined') == '1') then
  return {-1}
end
local new, updated, skipped = 0, 0, 0
local seq = tonumber(redis.call('HGET', KEYS[4], 'seq') or '0')
local base = 19 + 2 * tonumber(ARGV[17])
for _ = 1, tonumber(ARGV[18]) do
  local id, expected, version = ARGV[base], ARGV[base + 1], ARGV[base + 2]
  local current = redis.call('HGET', KEYS[1], id) or ''
  if current == expected then
    local previous = false
    if expected ~= '' and ARGV[base + 4] == '1' then
      previous = redis.call('HGET', KEYS[2], id)
    end
    redis.call('HSET', KEYS[1], id, version)
    redis.call('HSET', KEYS[2], id, ARGV[base + 3])
    if expected == '' then
      seq = seq + 1
      redis.call('ZADD', KEYS[3], seq, id)
    end
    if ARGV[base + 4] == '1' then
      if previous then
        redis.call('XADD', KEYS[5], 'MAXLEN', '~', ARGV[3], '*', 'event', ARGV[base + 5],
                   'previous', previous)
      else
        redis.call('XADD', KEYS[5], 'MAXLEN', '~', ARGV[3], '*', 'event', ARGV[base + 5])
      end
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
for i = 0, tonumber(ARGV[17]) - 1 do
  redis.call('HSET', KEYS[4], ARGV[19 + 2 * i], ARGV[20 + 2 * i])
end
if ARGV[12] == '1' and new + updated > tonumber(redis.call('HGET', KEYS[4], 'max_events') or '0') then
  redis.call('HSET', KEYS[4], 'max_events', new + updated)
end
if ARGV[7] ~= '' then
  redis.call('XADD', KEYS[6], 'MAXLEN', '~', ARGV[3], '*', 'notice', ARGV[7])
end
for i, name in ipairs({'etag', 'last_modified'}) do
  if ARGV[3 + i] ~= '' then
    redis.call('HSET', KEYS[4], name, ARGV[3 + i])
  else
    redis.call('HDEL', KEYS[4], name)
  end
end
local done = good_poll(KEYS[8], KEYS[9], KEYS[10], ARGV[9], ARGV[10], ARGV[11], ARGV[13],
                       ARGV[14], ARGV[15], ARGV[16])
return {new, updated, skipped, done[1], done[2], done[3], done[4]}
