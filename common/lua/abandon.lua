-- Undoes an enqueue whose publish was not confirmed, so no record claims `pending`
-- for a message the broker never took. Leaves the record alone once a worker saw it.
-- KEYS: task, stats, events, idempotency (may be an unused placeholder)
-- ARGV: id, use_idempotency (0/1)
-- Returns 1 if the record was removed.
local task, stats, events, idem = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local h = redis.call('HMGET', task, 'state', 'attempt', 'type')
if h[1] ~= 'pending' or h[2] ~= '0' then return 0 end
redis.call('DEL', task)
redis.call('HINCRBY', stats, 'pending', -1)
redis.call('HINCRBY', stats, 'enqueued', -1)
if ARGV[2] == '1' and redis.call('GET', idem) == ARGV[1] then redis.call('DEL', idem) end
event(events, ARGV[1], h[3], 'pending', 'abandoned', now_ms(), nil)
return 1
