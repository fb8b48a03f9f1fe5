-- A lock with a holder's name and a TTL: a chat's generation lock (the id of the job generating its reply), a
-- batch's runner (the worker running it). Compare-and-set, so a holder never takes the lock from another, nor
-- lets go of another's hold.
--   KEYS[1] the lock; ARGV[1] 'take', 'steal' or 'drop'; ARGV[2] the holder; ARGV[3] ttl (ms; take, steal);
--   ARGV[4] the holder to take it from (steal)
-- take: false when the holder holds it now (it was free, or the holder's own: its TTL restarts), else the
--       other holder's name; steal: 1 if ARGV[4] held it and the holder holds it now, else 0; drop: 1 if the
--       holder held it and it is free now, else 0.
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
