-- Queue Celery messages and record their jobs as pending, in one step: a job is never queued unrecorded.
-- The time recorded is the Redis server's, as the sweeper's, whatever the API hosts' clocks say. The record
-- lives an hour after the last send (far past any queue deadline) if no worker ever takes the queue's jobs.
--   KEYS[1] the queue (list), KEYS[2] its pending jobs (zset: id -> when sent), KEYS[3] their payloads (hash)
--   ARGV[1] the jobs, msgpack: [[id, the job's JSON text], ...] (one argument packs far faster than two per
--   job), ARGV[2 ..] the messages, LPUSHed in order (none: record only)
local jobs = cmsgpack.unpack(ARGV[1])
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
for first = 1, #jobs, 500 do  -- unpack() takes a bounded number of values
  local scores, payloads = {}, {}
  for i = first, math.min(#jobs, first + 499) do
    scores[#scores + 1] = now
    scores[#scores + 1] = jobs[i][1]
    payloads[#payloads + 1] = jobs[i][1]
    payloads[#payloads + 1] = jobs[i][2]
  end
  redis.call('ZADD', KEYS[2], unpack(scores))
  redis.call('HSET', KEYS[3], unpack(payloads))
end
if #jobs > 0 then  -- the record goes with the last job claimed; a queue nobody consumes lets it expire
  redis.call('EXPIRE', KEYS[2], 3600)
  redis.call('EXPIRE', KEYS[3], 3600)
end
for i = 2, #ARGV, 1000 do
  redis.call('LPUSH', KEYS[1], unpack(ARGV, i, math.min(#ARGV, i + 999)))
end
return #jobs
