-- Dependencies between tasks (docs/workflows.md), shared by the scripts that end a
-- task or create one `--after` others. `{ns}:deps:{id}` holds the parents a `waiting`
-- task still waits for; `{ns}:dependents:{id}` the tasks waiting for `id`. Each edge
-- costs O(1) when it is made and when its parent ends: no sweep over waiting tasks.
-- A dependent's keys are built from `prefix` (`{ns}:`) because no caller knows them
-- before the call; on Redis Cluster they would need a workflow-wide hash tag, which
-- the key schema does not give yet.

-- Cancels the waiting dependents of `root` (reason `dependency_failed`, `error`
-- naming the parent that ended `why`), and theirs, level by level.
local function cancel_dependents(prefix, events, root, why, now, retention)
  local queue, head = {root}, 1
  while head <= #queue do
    local parent = queue[head]
    head = head + 1
    local dependents = prefix .. 'dependents:' .. parent
    for _, c in ipairs(redis.call('SMEMBERS', dependents)) do
      local ckey = prefix .. 'task:' .. c
      local h = redis.call('HMGET', ckey, 'state', 'type')
      if h[1] == 'waiting' then
        move(ckey, prefix .. 'stats:' .. h[2], events, 'waiting', 'cancelled', now, nil,
          finish_fields(now, {'reason', 'dependency_failed',
            'error', 'dependency ' .. parent .. ' ' .. (parent == root and why or 'cancelled')}))
        redis.call('HDEL', ckey, 'envelope')
        redis.call('DEL', prefix .. 'deps:' .. c)
        redis.call('PEXPIRE', ckey, retention)
        queue[#queue + 1] = c
      end
    end
    redis.call('DEL', dependents)
  end
end

-- The task `id` is now `state`. Completed: no dependent waits for it any more, and one
-- that waits for nothing else becomes `pending`. Returns the stored envelopes of the
-- dependents released and not yet published: the caller publishes them (confirmed),
-- then forgets them (`StateStore::forget_released`). Failed or cancelled: its waiting
-- dependents are cancelled, transitively. Idempotent: a second call (a redelivered
-- parent) releases nothing twice and returns the envelopes still unpublished.
local function resolve_dependents(prefix, events, id, state, now, retention)
  local out = {}
  local dependents = prefix .. 'dependents:' .. id
  if state == 'completed' then
    for _, c in ipairs(redis.call('SMEMBERS', dependents)) do
      local ckey, deps = prefix .. 'task:' .. c, prefix .. 'deps:' .. c
      redis.call('SREM', deps, id)
      local h = redis.call('HMGET', ckey, 'state', 'type', 'envelope')
      if h[1] == 'waiting' and redis.call('SCARD', deps) == 0 then
        move(ckey, prefix .. 'stats:' .. h[2], events, 'waiting', 'pending', now, nil)
        h[1] = 'pending'
      end
      if h[1] == 'pending' and h[3] then out[#out + 1] = h[3] end
    end
    if #out == 0 then redis.call('DEL', dependents) end
  elseif state == 'failed' or state == 'cancelled' then
    cancel_dependents(prefix, events, id, state, now, retention)
  end
  return out
end
