-- Apply one poll's plan (monitor/poll/decide.py) in one atomic step: the diff's fingerprints,
-- texts and events, the feed's meta and validators, its health, and the poller's lease
-- (goodpoll.lua is prepended; a plan without changes goes through quiet.lua).
-- KEYS: 1 fingerprints hash, 2 texts hash, 3 order zset, 4 meta hash, 5 events stream,
--       6 notices stream, 7 fence counter, 8 health hash, 9 lease, 10 lease wanted flag
--       (see monitor/poll/lease.py)
-- ARGV: 1 validators ('keep' a 304, 'touch' an unchanged body, 'replace' a parsed one),
--       2 baseline ('1' first sight, '0' otherwise; only with 'replace'), 3 max entries kept,
--       4 stream maxlen, 5 etag, 6 last-modified, 7 body hash, 8 an operator notice to
--       append ('' for none), 9 the poller's fencing token ('' when polling without a
--       lease), 10 now, 11 health status, 12 kind parsed ('' none), 13 track the most events
--       in one poll ('1'/'0': not while the flood breaker holds them), 14 lease value
--       `owner fence` ('' without a lease), 15 ms to hold the lease when nobody else wants
--       it, 16 ms to hold it when another poller asked for it (<= 0: release), 17 the next
--       poll's time ('' unknown), 18 number of meta fields m, 19 number of changes n, then m
--       field/value pairs, then per change: id, expected previous version ('' when new),
--       version, texts JSON, emit ('1'/'0'), event
-- A token that is no longer the feed's newest (another poller took the feed) refuses the
-- whole plan. Each change is applied only if the stored version still equals the expected one
-- (a compare-and-set), so a second poller or a retried commit never duplicates an event. An
-- edit's event carries the texts it replaces (`previous`), read here as they are replaced.
-- Returns {new, updated, skipped, lease, failures before, failing since, recovered}: lease 1
-- held for the next turn, 2 handed over (held shorter, or released), 0 no lease;
-- {-1} when the baseline state moved (nothing written), {-2} when superseded.
if ARGV[9] ~= '' and redis.call('GET', KEYS[7]) ~= ARGV[9] then
  return {-2}
end
local mode = ARGV[1]
local new, updated, skipped = 0, 0, 0
local base = 20
if mode == 'replace' then
  if (ARGV[2] == '1') == (redis.call('HGET', KEYS[4], 'baselined') == '1') then
    return {-1}
  end
  local seq = tonumber(redis.call('HGET', KEYS[4], 'seq') or '0')
  base = base + 2 * tonumber(ARGV[18])
  for _ = 1, tonumber(ARGV[19]) do
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
          redis.call('XADD', KEYS[5], 'MAXLEN', '~', ARGV[4], '*', 'event', ARGV[base + 5],
                     'previous', previous)
        else
          redis.call('XADD', KEYS[5], 'MAXLEN', '~', ARGV[4], '*', 'event', ARGV[base + 5])
        end
        if expected == '' then new = new + 1 else updated = updated + 1 end
      end
    else
      skipped = skipped + 1
    end
    base = base + 6
  end
  local excess = redis.call('ZCARD', KEYS[3]) - tonumber(ARGV[3])
  while excess > 0 do
    local batch = math.min(excess, 500)
    local old = redis.call('ZRANGE', KEYS[3], 0, batch - 1)
    redis.call('ZREMRANGEBYRANK', KEYS[3], 0, batch - 1)
    redis.call('HDEL', KEYS[1], unpack(old))
    redis.call('HDEL', KEYS[2], unpack(old))
    excess = excess - batch
  end
  redis.call('HSET', KEYS[4], 'baselined', '1', 'seq', seq, 'body_hash', ARGV[7])
  for i = 0, tonumber(ARGV[18]) - 1 do
    redis.call('HSET', KEYS[4], ARGV[20 + 2 * i], ARGV[21 + 2 * i])
  end
  if ARGV[13] == '1' and new + updated > tonumber(redis.call('HGET', KEYS[4], 'max_events') or '0') then
    redis.call('HSET', KEYS[4], 'max_events', new + updated)
  end
end
if ARGV[8] ~= '' then
  redis.call('XADD', KEYS[6], 'MAXLEN', '~', ARGV[4], '*', 'notice', ARGV[8])
end
if mode ~= 'keep' then
  for i, name in ipairs({'etag', 'last_modified'}) do
    if ARGV[4 + i] ~= '' then
      redis.call('HSET', KEYS[4], name, ARGV[4 + i])
    elseif mode == 'replace' then
      redis.call('HDEL', KEYS[4], name)
    end
  end
end
local done = good_poll(KEYS[8], KEYS[9], KEYS[10], ARGV[10], ARGV[11], ARGV[12], ARGV[14],
                       ARGV[15], ARGV[16], ARGV[17])
return {new, updated, skipped, done[1], done[2], done[3], done[4]}
