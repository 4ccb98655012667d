-- Shared prelude of every taskfleet script. The `__NAME__` tables are rendered from
-- Rust (`store/scripts.rs` PRELUDE_CONSTANTS), so Redis refuses exactly what Rust
-- refuses and counts exactly what Rust reads; a unit test fails if one is typed here.
-- `TaskState::can_transition_to`
local TRANSITIONS = __TRANSITIONS__
-- `TaskState::LIVE`: states with a live counter
local LIVE = __LIVE__
-- `TaskState::TERMINAL`
local TERMINAL = __TERMINAL__
-- `TaskState::total_on_entry`: the total bumped when a record enters a state
local TOTAL_ON_ENTRY = __TOTAL_ON_ENTRY__

-- Milliseconds from the Redis server clock: one clock for the whole fleet.
local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end

local function event(channel, id, ttype, from, to, at, worker)
  redis.call('PUBLISH', channel, cjson.encode({id = id, type = ttype, from = from or cjson.null,
    to = to, at = at, worker = (worker ~= nil and worker ~= '') and worker or cjson.null}))
end

-- Moves the record `task` from `from` to `to` if the table allows it: sets the
-- state and the fields of `extra` (a flat list), adjusts the counters and publishes
-- the event.
local function move(task, stats_key, events, from, to, now, worker, extra)
  if not (TRANSITIONS[from] and TRANSITIONS[from][to]) then
    return false
  end
  local fields = {'state', to, 'updated_at', now}
  for _, v in ipairs(extra or {}) do fields[#fields + 1] = v end
  redis.call('HSET', task, unpack(fields))
  if LIVE[from] then redis.call('HINCRBY', stats_key, from, -1) end
  if LIVE[to] then redis.call('HINCRBY', stats_key, to, 1) end
  if TOTAL_ON_ENTRY[to] then redis.call('HINCRBY', stats_key, TOTAL_ON_ENTRY[to], 1) end
  local h = redis.call('HMGET', task, 'id', 'type')
  event(events, h[1], h[2], from, to, now, worker)
  return true
end

-- A record entering a terminal state: stamp it and let it expire after the retention.
local function finish_fields(now, extra)
  local fields = {'finished_at', now}
  for _, v in ipairs(extra or {}) do fields[#fields + 1] = v end
  return fields
end

-- Creates the record of a task and counts it as enqueued: `scheduled` while its
-- `run_at` (ms, 0: none) is ahead, else `pending`. `expires_at` (ms, 0: none) is when
-- a task not started by then is cancelled instead. `trace_id`, `max_attempts` and
-- `priority` are stored only when known (not ''): an enqueuer that set none and knows
-- no declared settings of the type leaves them to the claim, which writes the values
-- the worker resolved. `attempt` is the last attempt started (0: none); `from` is the
-- state of the record this one replaces (nil for a new task). `initial`, when given,
-- is the state to create instead (`waiting`: enqueued `--after` unfinished tasks).
-- Returns the state it created.
local function create_record(task, stats, types, events, id, ttype, payload, max_attempts,
                             priority, trace_id, created_at, attempt, now, from, run_at, expires_at,
                             initial)
  local state = 'pending'
  if run_at and run_at > now then state = 'scheduled' end
  if initial then state = initial end
  local fields = {'id', id, 'type', ttype, 'state', state, 'attempt', attempt,
    'payload', payload, 'created_at', created_at, 'updated_at', now}
  if max_attempts ~= '' then
    fields[#fields + 1] = 'max_attempts'
    fields[#fields + 1] = max_attempts
  end
  if priority ~= '' then
    fields[#fields + 1] = 'priority'
    fields[#fields + 1] = priority
  end
  if trace_id ~= '' then
    fields[#fields + 1] = 'trace_id'
    fields[#fields + 1] = trace_id
  end
  if run_at and run_at > 0 then
    fields[#fields + 1] = 'run_at'
    fields[#fields + 1] = run_at
  end
  if expires_at and expires_at > 0 then
    fields[#fields + 1] = 'expires_at'
    fields[#fields + 1] = expires_at
  end
  redis.call('HSET', task, unpack(fields))
  redis.call('HINCRBY', stats, state, 1)
  redis.call('HINCRBY', stats, 'enqueued', 1)
  if types then redis.call('SADD', types, ttype) end
  event(events, id, ttype, from, state, now, nil)
  return state
end
