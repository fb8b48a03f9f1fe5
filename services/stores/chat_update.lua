-- Set a chat's title (no longer automatic; its activity time moves) and/or its pinned flag, and re-rank it in
-- its owner's list.
--   KEYS[1] the chat (hash), KEYS[2] the owner's chats (zset)
--   ARGV[1] owner, ARGV[2] chat id, ARGV[3] '1' to set the title, ARGV[4] the title, ARGV[5] pinned: '1', '0'
--   or '' (unchanged), ARGV[6] now (unix s), ARGV[7] the rank of now (unpinned), ARGV[8] what pinning adds
-- Returns false if the chat is not the owner's, else its summary (HGETALL).
if redis.call('HGET', KEYS[1], 'owner') ~= ARGV[1] then
  return false
end
local bonus = tonumber(ARGV[8])
local was_pinned = redis.call('HGET', KEYS[1], 'pinned') == '1'
local rank = tonumber(redis.call('ZSCORE', KEYS[2], ARGV[2]))
if was_pinned then
  rank = rank - bonus
end
if ARGV[3] == '1' then
  redis.call('HSET', KEYS[1], 'title', ARGV[4], 'title_auto', '0', 'updated', ARGV[6])
  rank = tonumber(ARGV[7])
end
local pinned = was_pinned
if ARGV[5] ~= '' then
  pinned = ARGV[5] == '1'
  redis.call('HSET', KEYS[1], 'pinned', ARGV[5])
end
if pinned then
  rank = rank + bonus
end
redis.call('ZADD', KEYS[2], rank, ARGV[2])
return redis.call('HGETALL', KEYS[1])
