-- A page of a user's records (chats: pinned first, then latest activity; batches: newest first), highest rank
-- first, each record a hash, in one round trip. The records' keys are made here from their ids (a prefix made
-- by shared.keys), so this script suits a single Redis server (not a cluster), as the rest of Conduit does.
--   KEYS[1] the user's records (zset: id -> rank)
--   ARGV[1] the id of the last record of the previous page ('': the first page), ARGV[2] the page size,
--   ARGV[3] the key of a record less its id (shared.keys.chat(''), shared.keys.batch(''))
-- Returns false if ARGV[1] is not one of the user's records, else {has_more (0/1), {id, HGETALL}, ...}.
local start = 0
if ARGV[1] ~= '' then
  local rank = redis.call('ZREVRANK', KEYS[1], ARGV[1])
  if not rank then
    return false
  end
  start = rank + 1
end
local limit = tonumber(ARGV[2])
local ids = redis.call('ZREVRANGE', KEYS[1], start, start + limit)
local page = {0}
if #ids > limit then
  page[1] = 1
end
for i = 1, math.min(limit, #ids) do
  page[#page + 1] = {ids[i], redis.call('HGETALL', ARGV[3] .. ids[i])}
end
return page
