-- Fleet-wide flow control of a type, for claim.lua (docs/flow-control.md): whether a
-- delivery about to start may start now. Every check runs before anything is taken,
-- so a delivery told to wait leaves nothing behind but a counter in the type's hash.
--   flow_admit(k, a) -> nil                         start it (slots taken, token spent)
--                    -> {'wait', reason, delay_ms}  reason: paused | rate_limit |
--                                                   max_running | group_max_running
-- k: type (the settings hash), rate, slots, group_slots, running
-- a: id, group ('' for none), interval_us, burst (0: no rate), max_running,
--    group_max_running (0: no cap), lease_ms, now (ms)
-- The hash's `rate_limit max_running group_max_running` (the stricter values of the
-- workers' declarations) tighten this worker's own, so disagreeing workers obey the
-- stricter limit. A slot zset maps holder (task id) → lease deadline; a holder whose
-- run no longer has a live lease in `running` (finished, handed back, worker killed)
-- is dropped when the zset looks full, so a slot comes back within one lease.
-- Redis Cluster: the type-level keys are not yet hash-tagged with the task's keys.

local function parse_rate(s)
  if not s then return nil end
  local n, unit = string.match(s, '^(%d+)/([smh])')
  if not n or tonumber(n) < 1 then return nil end
  local per = ({s = 1e6, m = 6e7, h = 3.6e9})[unit]
  local burst = tonumber(string.match(s, 'burst (%d+)$')) or 1
  return math.max(1, math.floor(per / tonumber(n))), math.max(1, burst)
end

-- Caps: 0 means none.
local function stricter_cap(mine, fleet)
  fleet = tonumber(fleet) or 0
  if mine == 0 then return fleet end
  if fleet == 0 then return mine end
  return math.min(mine, fleet)
end

local function slot_free(key, cap, id, running, now)
  if cap == 0 then return true end
  -- A slot this task still holds is its dead run's (a live run parks the claim before
  -- it gets here): it competes again like any other, never jumping the line.
  redis.call('ZREM', key, id)
  if redis.call('ZCARD', key) < cap then return true end
  for _, holder in ipairs(redis.call('ZRANGE', key, 0, -1)) do
    local deadline = tonumber(redis.call('ZSCORE', running, holder))
    if not deadline or deadline <= now then redis.call('ZREM', key, holder) end
  end
  return redis.call('ZCARD', key) < cap
end

local function flow_admit(k, a)
  local h = redis.call('HMGET', k.type, 'paused', 'rate_limit', 'max_running', 'group_max_running')
  if h[1] == '1' then
    redis.call('HINCRBY', k.type, 'waits_paused', 1)
    return {'wait', 'paused', 0}
  end
  local cap = stricter_cap(a.max_running, h[3])
  if not slot_free(k.slots, cap, a.id, k.running, a.now) then
    redis.call('HINCRBY', k.type, 'waits_cap', 1)
    return {'wait', 'max_running', 0}
  end
  local gcap = 0
  if a.group ~= '' then gcap = stricter_cap(a.group_max_running, h[4]) end
  if not slot_free(k.group_slots, gcap, a.id, k.running, a.now) then
    redis.call('HINCRBY', k.type, 'waits_cap', 1)
    return {'wait', 'group_max_running', 0}
  end
  -- GCRA on the server clock in µs: `tat` is when the next start is due at the steady
  -- rate; a start is allowed up to (burst - 1) intervals ahead of it.
  local interval, burst = a.interval_us, a.burst
  local fi, fb = parse_rate(h[2])
  if fi and (interval == 0 or fi > interval or (fi == interval and fb < burst)) then
    interval, burst = fi, fb
  end
  local tat, now_us
  if interval > 0 then
    local t = redis.call('TIME')
    now_us = tonumber(t[1]) * 1000000 + tonumber(t[2])
    tat = math.max(tonumber(redis.call('GET', k.rate)) or now_us, now_us)
    local allow_at = tat - interval * (burst - 1)
    if now_us < allow_at then
      redis.call('HINCRBY', k.type, 'waits_rate', 1)
      return {'wait', 'rate_limit', math.ceil((allow_at - now_us) / 1000)}
    end
  end
  -- Every check passed: take what they granted.
  local deadline = a.now + a.lease_ms
  if cap > 0 then redis.call('ZADD', k.slots, deadline, a.id) end
  if gcap > 0 then
    redis.call('ZADD', k.group_slots, deadline, a.id)
    -- One zset per group: an idle group's goes away (a day outlives any cap wait).
    redis.call('PEXPIRE', k.group_slots, 86400000)
  end
  if interval > 0 then
    local next_tat = tat + interval
    redis.call('SET', k.rate, string.format('%.0f', next_tat),
      'PX', math.ceil((next_tat - now_us) / 1000) + 1000)
  end
  return nil
end
