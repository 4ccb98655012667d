-- A worker takes a delivery. Decides, atomically, whether this delivery may run:
--   {'run', attempt, checkpoint|false}  run it; the worker's fence token, stored in
--                                       `fence`, must match every later write of this run
--   {'reschedule', delay_ms}            a failed attempt whose retry was never published:
--                                       publish the next attempt now, drop this one
--   {'drop', 'finished', state}         already finished (state is terminal)
--   {'drop', 'stale'}                   a copy of an older attempt
--   {'drop', 'duplicate'}               a second publish of the attempt running now
--   {'cancelled'}                       cancellation requested: never start it
--   {'poison', deliveries}              redelivered too often without finishing: now `failed`
--   {'hop', delay_ms}                   scheduled, or a retry, not due yet: publish this copy
--                                       to wait delay_ms more in a delay tier, drop this one
--   {'expired'}                         not started by its `expires_at`: now `cancelled`,
--                                       reason `expired`; never start it
--   {'park', delay_ms}                  the run is alive elsewhere (its lease holds), or a
--                                       parked copy's retry is not overdue: publish this copy
--                                       to check again after delay_ms; never counted
--   {'wait', reason, delay_ms}          flow control (flow.lua) holds it: paused, no rate
--                                       token, or no free slot; nothing was recorded
-- A record missing because a foreign client published the envelope (or Redis lost its
-- data) is created first. A redelivery of the attempt that is running elsewhere is a
-- crash takeover once its lease expired: it reuses the attempt, so a crash does not
-- use up a retry, and a healthy run (a broker that closed its channel, a run whose
-- delivery was parked) is never taken over while its lease is alive.
-- KEYS: task, stats, types, events, cancel, running, type, rate, slots, group_slots
-- ARGV: id, type, payload, attempt, max_attempts, priority, trace_id, created_at,
--       worker, lease_ms, max_redeliveries, retention_ms, redelivered (0/1),
--       fence (a token the worker drew for this delivery, unique per claim),
--       parked (0/1: a parked copy back from its check-back delay),
--       run_at, expires_at (ms from the envelope, 0: none; used to recreate a lost record),
--       group ('' none), rate_interval_us, rate_burst, max_running, group_max_running
--       (this worker's flow limits, 0: none)
local task, stats, types, events, cancel, running = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5], KEYS[6]
local id, ttype, worker = ARGV[1], ARGV[2], ARGV[9]
local attempt = tonumber(ARGV[4])
local parked = ARGV[15] == '1'
local now = now_ms()

if redis.call('EXISTS', task) == 0 then
  local created = tonumber(ARGV[8])
  if created == 0 then created = now end
  create_record(task, stats, types, events, id, ttype, ARGV[3], ARGV[5], ARGV[6], ARGV[7],
    created, attempt - 1, now, nil, tonumber(ARGV[16]), tonumber(ARGV[17]))
end

local h = redis.call('HMGET', task, 'state', 'attempt', 'deliveries', 'checkpoint', 'started_at', 'worker',
  'run_at', 'expires_at')
local state, rec_attempt = h[1], tonumber(h[2]) or 0
local deliveries = tonumber(h[3]) or 0

if TERMINAL[state] then return {'drop', 'finished', state} end
-- A copy of a task still `waiting` for its parents (published by hand, or twice):
-- not runnable yet; check back after a lease. Its release publishes it anyway.
if state == 'waiting' then return {'park', tonumber(ARGV[10])} end

local retention = tonumber(ARGV[12])
-- A parked or redelivered copy of a run being stopped, while its lease lives: the run
-- ends the task itself (`cancelled`, or `completed` if it finished first), so the copy
-- parks again rather than finishing the record under the run.
if (parked or ARGV[13] == '1') and (state == 'cancelling' or state == 'running')
    and attempt == rec_attempt then
  local deadline = tonumber(redis.call('ZSCORE', running, id))
  if deadline and deadline > now then return {'park', deadline - now} end
end
if state == 'cancelling' or redis.call('EXISTS', cancel) == 1 then
  if state == 'running' then
    move(task, stats, events, 'running', 'cancelling', now, worker, {'cancel_requested_at', now})
    state = 'cancelling'
  end
  move(task, stats, events, state, 'cancelled', now, worker, finish_fields(now, {'reason', 'requested'}))
  redis.call('ZREM', running, id)
  redis.call('PEXPIRE', task, retention)
  return {'cancelled'}
end

-- Never started and past its `expires_at`: it never runs.
local expires_at = tonumber(h[8])
if not h[5] and expires_at and now >= expires_at and (state == 'scheduled' or state == 'pending') then
  move(task, stats, events, state, 'cancelled', now, worker, finish_fields(now,
    {'reason', 'expired', 'error', 'not started by its expires_at'}))
  redis.call('PEXPIRE', task, retention)
  return {'expired'}
end

-- Scheduled: hop through the delay tiers until due, never early.
if state == 'scheduled' then
  local run_at = tonumber(h[7]) or now
  if run_at > now then return {'hop', run_at - now} end
  move(task, stats, events, 'scheduled', 'pending', now, nil)
  state = 'pending'
end

-- Which attempt this delivery runs as, or a stale copy to drop.
local effective
if state == 'pending' then
  if attempt < rec_attempt then return {'drop', 'stale'} end
  effective = attempt
elseif state == 'retrying' then
  if attempt < rec_attempt then return {'drop', 'stale'} end
  if attempt == rec_attempt and parked then
    -- The parked copy of a run that failed: that run published the retry, due at
    -- `next_attempt_at`. The copy only watches over it, and reschedules if the retry
    -- is overdue by a lease (its publish was lost with the parked delivery).
    local overdue_at = (tonumber(redis.call('HGET', task, 'next_attempt_at')) or now) + tonumber(ARGV[10])
    if now < overdue_at then return {'park', overdue_at - now} end
  end
  if attempt == rec_attempt then
    -- The failed attempt came back because publishing its retry was not confirmed.
    -- The worker publishes the next attempt instead of running this body, so a
    -- message's attempt and the record's never disagree. Counted like a delivery:
    -- a retry that can never be published ends as poison, not in a loop.
    deliveries = deliveries + 1
    if deliveries > tonumber(ARGV[11]) then
      move(task, stats, events, 'retrying', 'running', now, worker, {'deliveries', deliveries})
      move(task, stats, events, 'running', 'failed', now, worker, finish_fields(now,
        {'error', 'poison message: its retry could not be scheduled after ' .. deliveries .. ' tries'}))
      redis.call('PEXPIRE', task, retention)
      return {'poison', deliveries}
    end
    redis.call('HSET', task, 'deliveries', deliveries)
    local due = tonumber(redis.call('HGET', task, 'next_attempt_at')) or now
    return {'reschedule', math.max(0, due - now)}
  end
  -- The next attempt, early from its delay tier: on for the rest, never early.
  local due = tonumber(redis.call('HGET', task, 'next_attempt_at'))
  if attempt == rec_attempt + 1 and due and due > now then return {'hop', due - now} end
  effective = attempt
else -- running
  if attempt < rec_attempt then return {'drop', 'stale'} end
  -- A first delivery of the running attempt is a duplicate publish, not a crash: the
  -- running delivery, if its worker dies, comes back flagged as redelivered.
  if attempt == rec_attempt then
    if ARGV[13] ~= '1' and not parked then return {'drop', 'duplicate'} end
    local deadline = tonumber(redis.call('ZSCORE', running, id))
    if deadline and deadline > now then return {'park', deadline - now} end
  end
  effective = attempt
end

-- Flow control, last before the start: a delivery that must wait changes nothing.
local held = flow_admit(
  {type = KEYS[7], rate = KEYS[8], slots = KEYS[9], group_slots = KEYS[10], running = running},
  {id = id, group = ARGV[18], interval_us = tonumber(ARGV[19]), burst = tonumber(ARGV[20]),
   max_running = tonumber(ARGV[21]), group_max_running = tonumber(ARGV[22]),
   lease_ms = tonumber(ARGV[10]), now = now})
if held then return held end

-- `deliveries` counts claims of this attempt: the poison bound. A copy reaching this
-- point found no live lease (a live one parks it above), whichever worker it is.
if effective == rec_attempt and h[5] then
  deliveries = deliveries + 1
else
  deliveries = 1
end

-- `fence` changes with every claim, so a takeover, even by the same worker after a
-- reconnect, fences the run it replaced.
-- `max_attempts` and `priority` are the values this worker resolved (the envelope's
-- own, else its `[types.NAME]` over `[defaults]`): the record says what governs the run.
local fields = {'attempt', effective, 'worker', worker, 'started_at', now, 'deliveries', deliveries,
  'fence', ARGV[14], 'max_attempts', ARGV[5], 'priority', ARGV[6]}
if state == 'running' then
  redis.call('HSET', task, 'updated_at', now, unpack(fields))
  event(events, id, ttype, 'running', 'running', now, worker)
else
  move(task, stats, events, state, 'running', now, worker, fields)
end

if deliveries > tonumber(ARGV[11]) then
  move(task, stats, events, 'running', 'failed', now, worker, finish_fields(now,
    {'error', 'poison message: delivered ' .. deliveries .. ' times without finishing'}))
  redis.call('ZREM', running, id)
  redis.call('PEXPIRE', task, retention)
  return {'poison', deliveries}
end

redis.call('ZADD', running, now + tonumber(ARGV[10]), id)
return {'run', effective, h[4] or false}
