-- Create a feed's WebSub subscription (monitor/push/store.py, Subscriptions.create).
-- KEYS: 1 the subscription hash, 2 the callback index, 3 the due set. ARGV: 1 feed, 2 token,
-- 3 due time, 4.. field, value pairs. Creates the subscription only when the feed has none;
-- returns the stored hash's fields (flat) either way.
if redis.call('EXISTS', KEYS[1]) == 0 then
  redis.call('HSET', KEYS[1], unpack(ARGV, 4))
  redis.call('HSET', KEYS[2], ARGV[2], ARGV[1])
  redis.call('ZADD', KEYS[3], ARGV[3], ARGV[1])
end
return redis.call('HGETALL', KEYS[1])
