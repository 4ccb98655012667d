-- A worker commits the outcome of the run it made. Fenced: refused unless the record
-- is still `running`/`cancelling` under this run's fence (worker, attempt, token).
-- Idempotent for the same run: a retried commit whose first try was applied (its
-- reply lost) answers `ok` with the state that try left.
-- A requested cancel turns any outcome but success into `cancelled`.
-- A terminal outcome resolves the task's dependents in the same call (deps.lua):
-- `released` lists the envelopes of those now `pending`, for the worker to publish
-- before it acknowledges this delivery.
-- KEYS: task, stats, events, running
-- ARGV: id, worker, attempt, outcome (completed|failed|retrying|cancelled|pending),
--       result, error, retry_delay_ms, retention_ms, fence token, key_prefix ({ns}:)
-- Returns {'ok', final_state, cancel_latency_ms | false (unless cancelled), released} or
-- {'refused', current_state | false (the record is missing)}.
local task, stats, events, running = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local id, worker, attempt, outcome = ARGV[1], ARGV[2], ARGV[3], ARGV[4]
local h = redis.call('HMGET', task, 'state', 'worker', 'attempt', 'fence', 'deliveries')
local state = h[1]
if not state then return {'refused', false} end
local ours = h[2] == worker and h[3] == attempt and h[4] == ARGV[9]
if not ours then return {'refused', state} end
if state ~= 'running' and state ~= 'cancelling' then return {'ok', state, false, {}} end
local now = now_ms()

local to = outcome
if state == 'cancelling' and outcome ~= 'completed' then to = 'cancelled' end
if state == 'running' and to == 'cancelled' then
  move(task, stats, events, 'running', 'cancelling', now, worker, {'cancel_requested_at', now})
  state = 'cancelling'
end

local fields
if to == 'completed' then
  fields = finish_fields(now, {'result', ARGV[5], 'progress', 100})
elseif to == 'failed' then
  fields = finish_fields(now, {'error', ARGV[6]})
elseif to == 'cancelled' then
  fields = finish_fields(now, {'reason', 'requested'})
elseif to == 'retrying' then
  fields = {'error', ARGV[6], 'next_attempt_at', now + tonumber(ARGV[7])}
else -- pending: interrupted by a drain; uses neither an attempt nor a delivery
  fields = {'deliveries', math.max(0, (tonumber(h[5]) or 1) - 1)}
end

if not move(task, stats, events, state, to, now, worker, fields) then
  return {'refused', state}
end
redis.call('ZREM', running, id)
if TERMINAL[to] then redis.call('PEXPIRE', task, ARGV[8]) end
local latency = false
if to == 'cancelled' then
  latency = now - (tonumber(redis.call('HGET', task, 'cancel_requested_at')) or now)
end
local released = {}
if TERMINAL[to] then
  released = resolve_dependents(ARGV[10], events, id, to, now, tonumber(ARGV[8]))
end
return {'ok', to, latency, released}
