-- A worker leaving the fleet (after its drain) removes its registry entry.
-- KEYS: workers zset, worker hash
-- ARGV: worker
-- Returns 1.
redis.call('ZREM', KEYS[1], ARGV[1])
redis.call('DEL', KEYS[2])
return 1
