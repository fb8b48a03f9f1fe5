-- Claim jobs for this worker as it starts them: the first claim of a job wins, so a job runs at most once
-- whatever copies of its Celery message exist (a lost message is sent again by the API's sweeper).
-- A claimed job leaves the pending set of every queue, enters this worker's job registry (unless its entry is
-- empty), and takes its concurrent-stream lease again (it may have run out while the job was queued).
--   KEYS[1] the worker's job registry (hash); KEYS[2 ..] per queue: pending zset, pending hash
--   ARGV[1] the claim's value (the worker's name and a token of this call: a call retried after its reply
--           was lost finds its own claims and keeps them), ARGV[2] lease ttl (ms), ARGV[3] registry ttl (s),
--           ARGV[4] the jobs, msgpack:
--           [[id, claim key, claim ttl (s), registry entry or "", lease key or ""], ...] (one argument: a
--           group of 32 jobs packs in a fraction of the time 160 arguments take)
-- Returns per job 1 (claimed here) or 0 (claimed already: skip it).
local registry = KEYS[1]
local name, lease_ttl, registry_ttl = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3])
local jobs = cmsgpack.unpack(ARGV[4])
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local claimed, ids, entries = {}, {}, {}
for i, job in ipairs(jobs) do
  local id, claim, ttl, entry, lease = job[1], job[2], job[3], job[4], job[5]
  if redis.call('SET', claim, name, 'NX', 'EX', ttl) or redis.call('GET', claim) == name then
    ids[#ids + 1] = id
    if entry ~= '' then
      entries[#entries + 1] = id
      entries[#entries + 1] = entry
    end
    if lease ~= '' then
      redis.call('ZADD', lease, now + lease_ttl, id)
      redis.call('PEXPIRE', lease, lease_ttl + 1000)
    end
    claimed[i] = 1
  else
    claimed[i] = 0
  end
end
if #ids > 0 then
  for q = 2, #KEYS, 2 do
    redis.call('ZREM', KEYS[q], unpack(ids))
    redis.call('HDEL', KEYS[q + 1], unpack(ids))
  end
end
if #entries > 0 then
  redis.call('HSET', registry, unpack(entries))
  redis.call('EXPIRE', registry, registry_ttl)
end
return claimed
