-- Create a chat holding its first messages, unless its owner has max_chats chats already or the messages are
-- more than max_messages. The chat enters its owner's list.
--   KEYS[1] the chat (hash), KEYS[2] its messages (list), KEYS[3] the owner's chats (zset: id -> rank)
--   ARGV[1] the chat id, ARGV[2] its rank, ARGV[3] max chats (0: none), ARGV[4] max messages (0: none),
--   ARGV[5] n, then n summary fields and values (field, value, ...), then the messages (JSON), oldest first
-- Returns '' (created) or the name of the cap it would pass: 'chats' or 'messages'.
local max_chats, max_messages = tonumber(ARGV[3]), tonumber(ARGV[4])
local first = 6 + tonumber(ARGV[5])
if max_chats > 0 and redis.call('ZCARD', KEYS[3]) >= max_chats then
  return 'chats'
end
if max_messages > 0 and #ARGV - first + 1 > max_messages then
  return 'messages'
end
redis.call('HSET', KEYS[1], unpack(ARGV, 6, first - 1))
for i = first, #ARGV, 1000 do -- in steps: unpack puts every value on Lua's stack, which is bounded
  redis.call('RPUSH', KEYS[2], unpack(ARGV, i, math.min(i + 999, #ARGV)))
end
redis.call('ZADD', KEYS[3], ARGV[2], ARGV[1])
return ''
