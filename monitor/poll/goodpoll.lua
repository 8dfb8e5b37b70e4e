-- A good poll's health and lease, shared by apply.lua and quiet.lua (prepended to each).
-- health, lease and wanted are keys (see monitor/core/keys.py); status and kind ('' none) go
-- into health; value is the lease's `owner fence` ('' without a lease), held `hold` ms, or
-- `handover` ms when another poller asked for the feed (<= 0: released); next_poll ('' none)
-- is recorded. Returns {lease: 0 none, 1 held, 2 handed over; failures before; failing since;
-- 1 when the feed had been reported failing (its "recovered" notice is due)}.
local function good_poll(health, lease_key, wanted, now, status, kind, value, hold, handover,
                         next_poll)
  local before = redis.call('HMGET', health, 'consecutive_failures', 'failing_since')
  local recovered = redis.call('HDEL', health, 'failing_since')
  redis.call('HSET', health, 'consecutive_failures', 0, 'last_status', status, 'last_error', '',
             'last_poll', now, 'last_success', now)
  if kind ~= '' then
    redis.call('HSET', health, 'kind', kind)
  end
  local lease = 0
  if value ~= '' then
    lease = 1
    if redis.call('DEL', wanted) == 1 then
      hold, lease = handover, 2
    end
    if tonumber(hold) <= 0 then
      redis.call('DEL', lease_key)
      lease = 2
    else
      redis.call('SET', lease_key, value, 'PX', hold)
    end
  end
  if next_poll ~= '' then
    redis.call('HSET', health, 'next_poll', next_poll)
  end
  return {lease, before[1] or '', before[2] or '', recovered}
end
