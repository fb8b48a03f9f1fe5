-- Add messages at the end of a chat of the owner's (unless they would pass max_messages) and move the chat up
-- its owner's list; then, given a job id, let go of the chat if that job holds it (a generation's end: its
-- reply and the release in one step). A chat that is gone (or another owner's) gets nothing: never recreated.
--   KEYS[1] the chat (hash), KEYS[2] its messages (list), KEYS[3] the owner's chats (zset), KEYS[4] its lock
--   ARGV[1] owner, ARGV[2] chat id, ARGV[3] max messages (0: none), ARGV[4] now (unix s), ARGV[5] the rank of
--   now (unpinned), ARGV[6] what pinning adds to a rank, ARGV[7] the preview, ARGV[8] the job id to release
--   ('': none), ARGV[9 ..] the messages (JSON)
-- A generation's end whose last message the chat already ends with was sent twice (a retried round trip): it
-- adds nothing again.
-- Returns false if the chat is not the owner's, 'messages' if the cap would be passed, else the chat's summary
-- (HGETALL).
local function release()
  if ARGV[8] ~= '' and redis.call('GET', KEYS[4]) == ARGV[8] then
    redis.call('DEL', KEYS[4])
  end
end
if redis.call('HGET', KEYS[1], 'owner') ~= ARGV[1] then
  release()
  return false
end
local count = #ARGV - 8
if count > 0 and ARGV[8] ~= '' and redis.call('LINDEX', KEYS[2], -1) == ARGV[#ARGV] then
  count = 0
end
if count > 0 then
  local held, max = tonumber(redis.call('HGET', KEYS[1], 'count')), tonumber(ARGV[3])
  if max > 0 and held + count > max then
    release()
    return 'messages'
  end
  for i = 9, #ARGV, 1000 do -- in steps: unpack puts every value on Lua's stack, which is bounded
    redis.call('RPUSH', KEYS[2], unpack(ARGV, i, math.min(i + 999, #ARGV)))
  end
  redis.call('HSET', KEYS[1], 'count', held + count, 'updated', ARGV[4], 'preview', ARGV[7])
  local rank = tonumber(ARGV[5])
  if redis.call('HGET', KEYS[1], 'pinned') == '1' then
    rank = rank + tonumber(ARGV[6])
  end
  redis.call('ZADD', KEYS[3], rank, ARGV[2])
end
release()
return redis.call('HGETALL', KEYS[1])
