-- Take a chat for a generation's job, if it is the owner's and no other job holds it.
--   KEYS[1] the chat (hash), KEYS[2] its lock; ARGV[1] owner, ARGV[2] the job, ARGV[3] the lock's ttl (ms)
-- Returns -1 if the chat is not the owner's (or none); 0 when the job holds it now; else the holder's job id.
if redis.call('HGET', KEYS[1], 'owner') ~= ARGV[1] then
  return -1
end
local holder = redis.call('GET', KEYS[2])
if holder and holder ~= ARGV[2] then
  return holder
end
redis.call('SET', KEYS[2], ARGV[2], 'PX', ARGV[3])
return 0
