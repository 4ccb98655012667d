-- A worker's beat: refreshes its registry entry and the leases of the tasks it runs,
-- and tells it which of them were asked to stop or were taken over.
-- KEYS: workers zset, worker hash, running zset
-- ARGV: worker, lease_ms, entry_ttl_ms, status, task_key_prefix, cancel_key_prefix,
--       n_fields, ... then n_fields (field, value) pairs of the registry entry, then
--       (id, fence) pairs of its runs
-- Returns {now, cancelled_ids, lost (id, fence pairs)}.
local workers, me, running = KEYS[1], KEYS[2], KEYS[3]
local worker = ARGV[1]
local now = now_ms()
local deadline = now + tonumber(ARGV[2])
local nfields = tonumber(ARGV[7])
local entry = {'heartbeat_at', now, 'status', ARGV[4]}
for i = 8, 7 + 2 * nfields do entry[#entry + 1] = ARGV[i] end
local runs = {}
for i = 8 + 2 * nfields, #ARGV, 2 do runs[#runs + 1] = {ARGV[i], ARGV[i + 1]} end
entry[#entry + 1] = 'inflight'
entry[#entry + 1] = #runs
redis.call('HSET', me, unpack(entry))
-- Set by the first beat, from the same clock as every other timestamp.
redis.call('HSETNX', me, 'started_at', now)
redis.call('PEXPIRE', me, ARGV[3])
redis.call('ZADD', workers, now, worker)

local cancelled, lost = {}, {}
for _, run in ipairs(runs) do
  local id, fence = run[1], run[2]
  local task = ARGV[5] .. id
  local h = redis.call('HMGET', task, 'state', 'worker', 'fence')
  if (h[1] == 'running' or h[1] == 'cancelling') and h[2] == worker and h[3] == fence then
    redis.call('ZADD', running, 'XX', deadline, id)
    if h[1] == 'cancelling' or redis.call('EXISTS', ARGV[6] .. id) == 1 then
      cancelled[#cancelled + 1] = id
    end
  else
    lost[#lost + 1] = id
    lost[#lost + 1] = fence
  end
end
return {now, cancelled, lost}
