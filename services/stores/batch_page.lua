-- A page of a user's batches, newest first, with their records, in one round trip.
--   KEYS[1] the user's batches (zset: id -> created, ms)
--   ARGV[1] the id of the last batch of the previous page ('': the first page), ARGV[2] the page size,
--   ARGV[3] the key of a batch less its id (shared.keys.batch(''))
-- Returns false if ARGV[1] is not one of the user's batches, else {has_more (0/1), {HGETALL}, ...}.
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
  page[#page + 1] = redis.call('HGETALL', ARGV[3] .. ids[i])
end
return page
