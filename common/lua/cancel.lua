-- A cancellation request. Idempotent; reports the state it leaves the task in.
--   scheduled/waiting/pending/retrying -> cancelled at once (reason `requested`); running -> cancelling (+ flag, + notice
--   on the cancellations channel); cancelling and terminal states are unchanged.
-- The flag outlives worker restarts: a claim refuses any task that has it.
-- A task that ends cancelled here cancels its waiting dependents, transitively
-- (deps.lua); `with_dependents` cancels them whatever the task's own state.
-- KEYS: task, stats, events, cancel, cancellations channel
-- ARGV: id, retention_ms, key_prefix ({ns}:), with_dependents (0/1)
-- Returns {'not_found'} or {'ok', state}.
local task, stats, events, cancel, channel = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5]
local id = ARGV[1]
local state = redis.call('HGET', task, 'state')
if not state then return {'not_found'} end
local now = now_ms()
if ARGV[4] == '1' and state ~= 'completed' then
  cancel_dependents(ARGV[3], events, id, 'cancelled', now, tonumber(ARGV[2]))
end
if TERMINAL[state] then return {'ok', state} end
redis.call('SET', cancel, now, 'PX', ARGV[2])
if state == 'scheduled' or state == 'waiting' or state == 'pending' or state == 'retrying' then
  move(task, stats, events, state, 'cancelled', now, nil,
    finish_fields(now, {'cancel_requested_at', now, 'reason', 'requested'}))
  if state == 'waiting' then
    redis.call('HDEL', task, 'envelope')
    redis.call('DEL', ARGV[3] .. 'deps:' .. id)
  end
  redis.call('PEXPIRE', task, ARGV[2])
  cancel_dependents(ARGV[3], events, id, 'cancelled', now, tonumber(ARGV[2]))
  return {'ok', 'cancelled'}
end
if state == 'running' then
  move(task, stats, events, 'running', 'cancelling', now, nil, {'cancel_requested_at', now})
end
redis.call('PUBLISH', channel, id)
return {'ok', 'cancelling'}
