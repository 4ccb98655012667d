-- A worker's scheduler asks to lead one schedule: the lease is held in the schedule's
-- own hash (`leader`, `leader_until`), so one key is all this script touches. Taken
-- when free or expired, renewed by its holder.
-- KEYS: schedule
-- ARGV: worker, lease_ms, type, timing_kind (cron|every), timing_spec
-- Returns {1, now, next_at|false} while this worker leads, else {0, now, leader}.
local schedule = KEYS[1]
local worker, lease = ARGV[1], tonumber(ARGV[2])
local now = now_ms()
local h = redis.call('HMGET', schedule, 'leader', 'leader_until', 'next_at')
local leader, until_ms = h[1], tonumber(h[2]) or 0
if leader and leader ~= worker and until_ms > now then
  return {0, now, leader}
end
redis.call('HSET', schedule, 'leader', worker, 'leader_until', now + lease, 'type', ARGV[3],
  ARGV[4], ARGV[5])
return {1, now, h[3] and tonumber(h[3]) or false}
