-- A cancellation request. Idempotent; reports the state it leaves the task in.
--   scheduled/pending/retrying -> cancelled at once (reason `requested`); running -> cancelling (+ flag, + notice
--   on the cancellations channel); cancelling and terminal states are unchanged.
-- The flag outlives worker restarts: a claim refuses any task that has it.
-- KEYS: task, stats, events, cancel, cancellations channel
-- ARGV: id, retention_ms
-- Returns {'not_found'} or {'ok', state}.
local task, stats, events, cancel, channel = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5]
local id = ARGV[1]
local state = redis.call('HGET', task, 'state')
if not state then return {'not_found'} end
if TERMINAL[state] then return {'ok', state} end
local now = now_ms()
redis.call('SET', cancel, now, 'PX', ARGV[2])
if state == 'scheduled' or state == 'pending' or state == 'retrying' then
  move(task, stats, events, state, 'cancelled', now, nil,
    finish_fields(now, {'cancel_requested_at', now, 'reason', 'requested'}))
  redis.call('PEXPIRE', task, ARGV[2])
  return {'ok', 'cancelled'}
end
if state == 'running' then
  move(task, stats, events, 'running', 'cancelling', now, nil, {'cancel_requested_at', now})
end
redis.call('PUBLISH', channel, id)
return {'ok', 'cancelling'}
