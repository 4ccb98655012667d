-- The expiry sweep, run by the worker that holds the reaper lock right after its
-- reap: a task past its `expires_at` that never started ends `cancelled`, reason
-- `expired`, without waiting for its message to be delivered (a backlog, a paused
-- type, a type no live worker serves). Its message, when delivered later, is dropped
-- as finished. Each entry is visited once, when it falls due, and removed: a sweep
-- costs O(entries due, at most `limit`), and an entry whose task started, finished or
-- lost its record meanwhile is only removed.
-- Slots: like reap.lua, the task and stats keys are built from prefixes, not
-- declared; on a cluster they need the namespace as a hash tag (not yet so).
-- KEYS: expiring zset
-- ARGV: worker, limit, task_key_prefix, stats_key_prefix, events, retention_ms
-- Returns the ids expired.
local expiring = KEYS[1]
local worker = ARGV[1]
local now = now_ms()
local expired = {}
for _, id in ipairs(redis.call('ZRANGEBYSCORE', expiring, '-inf', now, 'LIMIT', 0, tonumber(ARGV[2]))) do
  local task = ARGV[3] .. id
  local h = redis.call('HMGET', task, 'state', 'type', 'started_at', 'expires_at')
  local state, expires_at = h[1], tonumber(h[4])
  -- Never started (no `started_at`), not finished, and due by the record's own time:
  -- `move` refuses any state the table does not let go to `cancelled`.
  if state and not TERMINAL[state] and not h[3] and expires_at and now >= expires_at then
    if move(task, ARGV[4] .. h[2], ARGV[5], state, 'cancelled', now, worker, finish_fields(now,
        {'reason', 'expired', 'error', 'not started by its expires_at'})) then
      redis.call('PEXPIRE', task, ARGV[6])
      expired[#expired + 1] = id
    end
  end
  redis.call('ZREM', expiring, id)
end
return expired
