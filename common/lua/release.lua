-- Resolves the dependents of a task that is terminal (deps.lua), for the paths that
-- did not do it in the same call as the task's own transition: a redelivered copy of
-- a finished task (the worker died between its commit and its ack), and tasks the
-- claim ended (cancelled, expired, poison). Idempotent; nothing for a live task.
-- KEYS: task, events
-- ARGV: id, key_prefix ({ns}:), retention_ms
-- Returns the envelopes of the dependents released and not yet published.
local task, events = KEYS[1], KEYS[2]
local state = redis.call('HGET', task, 'state')
if not state or not TERMINAL[state] then return {} end
return resolve_dependents(ARGV[2], events, ARGV[1], state, now_ms(), tonumber(ARGV[3]))
