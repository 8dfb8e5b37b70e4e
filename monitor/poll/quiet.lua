-- Apply a quiet poll's plan (a 304, or the body parsed last time) in one atomic step: the
-- validators an unchanged body came with, the feed's health and the poller's lease. The same
-- as apply.lua's for a plan without changes, with a third of its keys and arguments (a quiet
-- poll is most polls, and packing them is most of their cost on the client).
-- KEYS: 1 meta hash, 2 fence counter, 3 health hash, 4 lease, 5 lease wanted flag
-- ARGV: 1 '1' to set the validators sent (an unchanged body), '0' to keep them (a 304),
--       2 etag, 3 last-modified, 4 the poller's fencing token ('' without a lease), 5 now,
--       6 health status, 7 lease value `owner fence` ('' without a lease), 8 ms to hold it,
--       9 ms to hold it when another poller asked for it, 10 the next poll's time ('' none)
-- Returns as apply.lua: {0, 0, 0, lease, failures before, failing since, recovered}, or {-2}
-- when the fencing token was superseded (nothing written).
if ARGV[4] ~= '' and redis.call('GET', KEYS[2]) ~= ARGV[4] then
  return {-2}
end
if ARGV[1] == '1' then
  for i, name in ipairs({'etag', 'last_modified'}) do
    if ARGV[1 + i] ~= '' then
      redis.call('HSET', KEYS[1], name, ARGV[1 + i])
    end
  end
end
local done = good_poll(KEYS[3], KEYS[4], KEYS[5], ARGV[5], ARGV[6], '', ARGV[7], ARGV[8],
                       ARGV[9], ARGV[10])
return {0, 0, 0, done[1], done[2], done[3], done[4]}
