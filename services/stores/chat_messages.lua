-- A chat's messages, oldest first, if it is the owner's.
--   KEYS[1] the chat (hash), KEYS[2] its messages (list); ARGV[1] owner
-- Returns false if the chat is not the owner's (or none), else the messages (JSON).
if redis.call('HGET', KEYS[1], 'owner') ~= ARGV[1] then
  return false
end
return redis.call('LRANGE', KEYS[2], 0, -1)
