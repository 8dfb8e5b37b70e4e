-- Claim a subscription's due work for one process (monitor/push/store.py, Subscriptions.claim).
-- KEYS: 1 the due set. ARGV: 1 feed, 2 now, 3 the new due time. 1 when claimed.
local due = redis.call('ZSCORE', KEYS[1], ARGV[1])
if due and tonumber(due) <= tonumber(ARGV[2]) then
  redis.call('ZADD', KEYS[1], ARGV[3], ARGV[1])
  return 1
end
return 0
