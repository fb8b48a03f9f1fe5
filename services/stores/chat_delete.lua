-- Delete a chat of the owner's: its summary, messages and lock, and its entry in the owner's list.
--   KEYS[1] the chat (hash), KEYS[2] its messages (list), KEYS[3] its lock, KEYS[4] the owner's chats (zset)
--   ARGV[1] owner, ARGV[2] chat id
-- Returns 1 (deleted) or 0 (not the owner's chat, or none).
if redis.call('HGET', KEYS[1], 'owner') ~= ARGV[1] then
  return 0
end
redis.call('DEL', KEYS[1], KEYS[2], KEYS[3])
redis.call('ZREM', KEYS[4], ARGV[2])
return 1
