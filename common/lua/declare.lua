-- A worker declares the effective settings of one type it serves, when it starts:
-- its settings replace the hash's (the last worker to start wins), it joins
-- `workers`, and the settings it replaced come back so that the worker can warn when
-- a live worker declared different ones. `paused` is never touched here.
-- Touches one key only, so the hash can live on any Redis Cluster shard.
-- KEYS: type (the type's settings hash)
-- ARGV: worker, max_attempts, timeout_ms, priority
-- Returns {declared_by | false, max_attempts | false, timeout_ms | false,
--          priority | false, workers (comma-separated ids, this worker included)}.
local key, worker = KEYS[1], ARGV[1]
local prev = redis.call('HMGET', key, 'declared_by', 'max_attempts', 'timeout_ms', 'priority',
  'workers')
local members, seen = {}, {}
for id in string.gmatch(prev[5] or '', '[^,]+') do
  if not seen[id] then
    seen[id] = true
    members[#members + 1] = id
  end
end
if not seen[worker] then members[#members + 1] = worker end
table.sort(members)
local list = table.concat(members, ',')
redis.call('HSET', key, 'max_attempts', ARGV[2], 'timeout_ms', ARGV[3], 'priority', ARGV[4],
  'declared_by', worker, 'declared_at', now_ms(), 'workers', list)
return {prev[1] or false, prev[2] or false, prev[3] or false, prev[4] or false, list}
