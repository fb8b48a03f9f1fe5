-- Take a dead worker's job registry, once per silence: not if it announced itself meanwhile, nor if this
-- silence was reaped already (by this or another API process). Its presence is left to the directory.
--   KEYS[1] the workers' heartbeats (zset), KEYS[2] the worker's job registry (hash), KEYS[3] the reaped mark
--   ARGV[1] the worker's name, ARGV[2] silent since (unix s): a heartbeat after it means alive
-- Returns the registry as a flat list (job id, entry, ...), or false when there is nothing to reap.
local seen = redis.call('ZSCORE', KEYS[1], ARGV[1])
if not seen or tonumber(seen) > tonumber(ARGV[2]) or redis.call('GET', KEYS[3]) == seen then
  return false
end
redis.call('SET', KEYS[3], seen, 'EX', 300)
local jobs = redis.call('HGETALL', KEYS[2])
redis.call('DEL', KEYS[2])
return jobs
