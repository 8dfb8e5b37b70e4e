-- Update a WebSub subscription that exists (monitor/push/store.py, Subscriptions.update).
-- KEYS: 1 the subscription hash, 2 the due set. ARGV: 1 feed, 2 '' (leave the schedule),
-- 'unschedule' or the due time, 3.. field, value pairs. Returns 0 when there is no hash.
if redis.call('EXISTS', KEYS[1]) == 0 then
  return 0
end
redis.call('HSET', KEYS[1], unpack(ARGV, 3))
if ARGV[2] == 'unschedule' then
  redis.call('ZREM', KEYS[2], ARGV[1])
elseif ARGV[2] ~= '' then
  redis.call('ZADD', KEYS[2], ARGV[2], ARGV[1])
end
return 1
