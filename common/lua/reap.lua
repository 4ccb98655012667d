-- Run by one worker at a time (a lock with expiry): leases past their deadline
-- belong to dead or hung workers. Their tasks go back to `pending` without using an
-- attempt (`cancelling` ones end `cancelled`); RabbitMQ redelivers the message once
-- the dead worker's connection closes, and a hung worker's late commit is fenced.
-- Also drops registry entries of workers whose hash expired.
-- KEYS: running zset, lock, workers zset
-- ARGV: worker, lock_ms, limit, task_key_prefix, stats_key_prefix, events, retention_ms,
--       worker_key_prefix
-- Returns the ids returned to `pending` or `cancelled`, or false without the lock.
local running, lock, workers = KEYS[1], KEYS[2], KEYS[3]
local me = ARGV[1]
local holder = redis.call('GET', lock)
if holder and holder ~= me then return false end
redis.call('SET', lock, me, 'PX', ARGV[2])
local now = now_ms()
local reaped = {}
for _, id in ipairs(redis.call('ZRANGEBYSCORE', running, '-inf', now, 'LIMIT', 0, tonumber(ARGV[3]))) do
  local task = ARGV[4] .. id
  local h = redis.call('HMGET', task, 'state', 'type', 'worker')
  local stats = ARGV[5] .. (h[2] or '')
  if h[1] == 'running' then
    move(task, stats, ARGV[6], 'running', 'pending', now, h[3],
      {'error', 'interrupted: lease of worker ' .. (h[3] or '?') .. ' expired'})
    reaped[#reaped + 1] = id
  elseif h[1] == 'cancelling' then
    move(task, stats, ARGV[6], 'cancelling', 'cancelled', now, h[3],
      finish_fields(now, {'reason', 'requested'}))
    redis.call('PEXPIRE', task, ARGV[7])
    reaped[#reaped + 1] = id
  end
  redis.call('ZREM', running, id)
end
for _, w in ipairs(redis.call('ZRANGE', workers, 0, -1)) do
  if redis.call('EXISTS', ARGV[8] .. w) == 0 then redis.call('ZREM', workers, w) end
end
return reaped
