-- The leader records a tick it enqueued (or skipped) and the next one, fenced on the
-- lease: a worker that lost the lead changes nothing.
-- KEYS: schedule
-- ARGV: worker, next_at, tick_at (0: none fired), task_id
-- Returns 1 when recorded, 0 when this worker no longer leads.
local schedule = KEYS[1]
if redis.call('HGET', schedule, 'leader') ~= ARGV[1] then return 0 end
redis.call('HSET', schedule, 'next_at', ARGV[2])
if ARGV[3] ~= '0' then
  redis.call('HSET', schedule, 'last_at', ARGV[3], 'last_id', ARGV[4])
end
return 1
