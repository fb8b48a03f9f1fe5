-- A chat's generation lock: the id of the job generating its reply, with a TTL. Compare-and-set, so a job
-- never takes the chat from a running job, nor lets go of another job's hold.
--   KEYS[1] the lock; ARGV[1] 'take', 'steal' or 'drop'; ARGV[2] the job id; ARGV[3] ttl (ms; take, steal);
--   ARGV[4] the holder to take it from (steal)
-- take: false when the job holds the chat now (it was free, or the job's own: its TTL restarts), else the
--       holder's job id; steal: 1 if the holder held it and the job holds it now, else 0; drop: 1 if the job
--       held it and it is free now, else 0.
local op, job = ARGV[1], ARGV[2]
local holder = redis.call('GET', KEYS[1])
if op == 'take' then
  if holder and holder ~= job then
    return holder
  end
  redis.call('SET', KEYS[1], job, 'PX', ARGV[3])
  return false
end
if op == 'steal' then
  if holder ~= ARGV[4] then
    return 0
  end
  redis.call('SET', KEYS[1], job, 'PX', ARGV[3])
  return 1
end
if holder ~= job then
  return 0
end
redis.call('DEL', KEYS[1])
return 1
