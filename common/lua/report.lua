-- A running handler reports progress or a checkpoint. Fenced like finish.lua, so
-- a zombie cannot overwrite the checkpoint of the attempt that took over.
-- KEYS: task, events
-- ARGV: id, worker, attempt, fence token, ... then (field, value) pairs to store
-- Returns 1 if stored, 0 if refused.
local task = KEYS[1]
local h = redis.call('HMGET', task, 'state', 'worker', 'attempt', 'type', 'fence')
if (h[1] ~= 'running' and h[1] ~= 'cancelling') or h[2] ~= ARGV[2] or h[3] ~= ARGV[3]
    or h[5] ~= ARGV[4] then
  return 0
end
local now = now_ms()
local ev = {id = ARGV[1], type = h[4], at = now, worker = ARGV[2]}
local fields = {'updated_at', now}
for i = 5, #ARGV, 2 do
  fields[#fields + 1] = ARGV[i]
  fields[#fields + 1] = ARGV[i + 1]
  ev[ARGV[i]] = ARGV[i + 1]
end
redis.call('HSET', task, unpack(fields))
redis.call('PUBLISH', KEYS[2], cjson.encode(ev))
return 1
