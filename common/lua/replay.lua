-- `taskfleet dead replay`: an operator gives a failed task a new life under the same
-- id, with fresh attempts. The one deliberate way out of a terminal state; counted
-- as a new enqueue (the earlier failure stays counted).
-- KEYS: task, stats, events, cancel
-- ARGV: id, type, payload, max_attempts, priority, trace_id, created_at
-- Returns {'ok'} or {'refused', state} (a record in any state but `failed`).
local task, stats, events = KEYS[1], KEYS[2], KEYS[3]
local state = redis.call('HGET', task, 'state')
if state and state ~= 'failed' then return {'refused', state} end
local now = now_ms()
redis.call('DEL', task, KEYS[4])
local created = tonumber(ARGV[7]) or 0
if created == 0 then created = now end
create_record(task, stats, nil, events, ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5], ARGV[6],
  created, 0, now, state)
return {'ok'}
