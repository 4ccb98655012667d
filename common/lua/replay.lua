-- `taskfleet dead replay`: an operator gives a failed task a new life under the same
-- id, with fresh attempts. The one deliberate way out of a terminal state; counted
-- as a new enqueue (the earlier failure stays counted).
-- KEYS: task, stats, events, cancel
-- ARGV: id, type, payload, max_attempts, priority, trace_id, created_at
-- Returns {'ok'} or {'refused', state}.
local task, stats, events = KEYS[1], KEYS[2], KEYS[3]
local state = redis.call('HGET', task, 'state')
if state and state ~= 'failed' then return {'refused', state} end
local now = now_ms()
redis.call('DEL', task, KEYS[4])
redis.call('HSET', task, 'id', ARGV[1], 'type', ARGV[2], 'state', 'pending', 'attempt', 0,
  'max_attempts', ARGV[4], 'priority', ARGV[5], 'payload', ARGV[3], 'trace_id', ARGV[6],
  'created_at', ARGV[7], 'updated_at', now)
redis.call('HINCRBY', stats, 'pending', 1)
redis.call('HINCRBY', stats, 'enqueued', 1)
event(events, ARGV[1], ARGV[2], state or cjson.null, 'pending', now, nil)
return {'ok'}
