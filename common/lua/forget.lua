-- Workers that are gone leave the `workers` list of a type: a worker's own id when it
-- deregisters, and the ids whose registry entry expired, found by a starting worker.
-- Touches one key only, so the hash can live on any Redis Cluster shard.
-- KEYS: type (the type's settings hash)
-- ARGV: ... the ids of the workers to remove
-- Returns the remaining list (comma-separated, possibly empty).
local key = KEYS[1]
local gone = {}
for i = 1, #ARGV do gone[ARGV[i]] = true end
local current = redis.call('HGET', KEYS[1], 'workers')
if not current then return '' end
local members = {}
for id in string.gmatch(current, '[^,]+') do
  if not gone[id] then members[#members + 1] = id end
end
local list = table.concat(members, ',')
redis.call('HSET', key, 'workers', list)
return list
