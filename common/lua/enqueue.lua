-- Creates the record of a new task, `scheduled` while its run_at is ahead, else
-- `pending`, and counts it. A task with an `expires_at` is entered in the expiring
-- zset, which the expiry sweep (expire.lua) reads.
-- KEYS: task, stats, types, events, idempotency (may be an unused placeholder), expiring
-- ARGV: id, type, payload, max_attempts ('' = unknown), priority ('' = unknown), trace_id,
--       created_at (0 = now), use_idempotency (0/1), retention_ms, run_at (ms, 0: now),
--       expires_at (ms, 0: never), group ('' none)
-- Returns {'created', state} or {'exists', existing_id}.
local task, stats, types, events, idem = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5]
local id, ttype, payload = ARGV[1], ARGV[2], ARGV[3]
local now = now_ms()

if ARGV[8] == '1' then
  local prior = redis.call('GET', idem)
  if prior then return {'exists', prior} end
  redis.call('SET', idem, id, 'PX', ARGV[9])
end
if redis.call('EXISTS', task) == 1 then
  return {'exists', id}
end
local created = tonumber(ARGV[7])
if created == 0 then created = now end
local state = create_record(task, stats, types, events, id, ttype, payload, ARGV[4], ARGV[5],
  ARGV[6], created, 0, now, nil, tonumber(ARGV[10]), tonumber(ARGV[11]))
local expires_at = tonumber(ARGV[11])
if expires_at > 0 then redis.call('ZADD', KEYS[6], expires_at, id) end
if ARGV[12] ~= '' then redis.call('HSET', task, 'group', ARGV[12]) end
return {'created', state}
