-- Take a chat for a generation's job, if it is the owner's and no other job holds it; and tell whether the chat
-- holds exactly the first messages the client sent, by their digests (then they need not be read).
--   KEYS[1] the chat (hash), KEYS[2] its lock; ARGV[1] owner, ARGV[2] the job, ARGV[3] the lock's ttl (ms),
--   ARGV[4 ..] the digests of the client's first 0, 1, 2, ... messages (chats.py's ``prefix_digests``)
-- Returns -1 if the chat is not the owner's (or none); the holder's job id if another job holds it; else 1
-- when the chat's digest is that of the client's first ``count`` messages, 0 when it is not.
if redis.call('HGET', KEYS[1], 'owner') ~= ARGV[1] then
  return -1
end
local holder = redis.call('GET', KEYS[2])
if holder and holder ~= ARGV[2] then
  return holder
end
redis.call('SET', KEYS[2], ARGV[2], 'PX', ARGV[3])
local count = tonumber(redis.call('HGET', KEYS[1], 'count'))
local digest = redis.call('HGET', KEYS[1], 'digest') or ''
if ARGV[4 + count] == digest then
  return 1
end
return 0
