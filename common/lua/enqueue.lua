-- Creates the record of a new task, `scheduled` while its run_at is ahead, else
-- `pending`, and counts it. A task with an `expires_at` is entered in the expiring
-- zset, which the expiry sweep (expire.lua) reads. With parents (`--after`,
-- docs/workflows.md): `waiting` while one of them is unfinished (the envelope is
-- stored, to be published when the last one completes), `cancelled`
-- (`dependency_failed`) if one failed or was cancelled, else `pending` at once.
-- KEYS: task, stats, types, events, idempotency (may be an unused placeholder), expiring
-- ARGV: id, type, payload, max_attempts ('' = unknown), priority ('' = unknown), trace_id,
--       created_at (0 = now), use_idempotency (0/1), retention_ms, run_at (ms, 0: now),
--       expires_at (ms, 0: never), key_prefix ({ns}:), envelope ('' without parents),
--       after (the parent ids, a JSON array), group ('' none)
-- Returns {'created', state}, {'exists', existing_id} or {'unknown_parent', id}.
local task, stats, types, events, idem = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5]
local id, ttype, payload = ARGV[1], ARGV[2], ARGV[3]
local prefix = ARGV[12]
local now = now_ms()

-- Parents are checked before anything is written: an unknown one refuses the task.
local parents = cjson.decode(ARGV[14])
local unfinished, failed = {}, nil
for _, p in ipairs(parents) do
  local ps = redis.call('HGET', prefix .. 'task:' .. p, 'state')
  if not ps then return {'unknown_parent', p} end
  if ps == 'failed' or ps == 'cancelled' then
    failed = failed or {p, ps}
  elseif ps ~= 'completed' then
    unfinished[#unfinished + 1] = p
  end
end

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
local initial = nil
if failed or #unfinished > 0 then initial = 'waiting' end
local state = create_record(task, stats, types, events, id, ttype, payload, ARGV[4], ARGV[5],
  ARGV[6], created, 0, now, nil, tonumber(ARGV[10]), tonumber(ARGV[11]), initial)
if ARGV[15] ~= '' then redis.call('HSET', task, 'group', ARGV[15]) end
if #parents > 0 then redis.call('HSET', task, 'after', ARGV[14]) end
if failed then
  move(task, stats, events, 'waiting', 'cancelled', now, nil, finish_fields(now,
    {'reason', 'dependency_failed', 'error', 'dependency ' .. failed[1] .. ' ' .. failed[2]}))
  redis.call('PEXPIRE', task, ARGV[9])
  return {'created', 'cancelled'}
end
local expires_at = tonumber(ARGV[11])
if expires_at > 0 then redis.call('ZADD', KEYS[6], expires_at, id) end
if #unfinished > 0 then
  redis.call('HSET', task, 'envelope', ARGV[13])
  redis.call('SADD', prefix .. 'deps:' .. id, unpack(unfinished))
  for _, p in ipairs(unfinished) do redis.call('SADD', prefix .. 'dependents:' .. p, id) end
end
return {'created', state}
