-- A page of a user's files by creation time, their records in one round trip; the entries of records that
-- expired meanwhile are dropped from the user's list on the way.
--   KEYS[1] the user's files (zset: id -> created, ms)
--   ARGV[1] the id of the last file of the previous page ('': the first page), ARGV[2] the page size,
--   ARGV[3] the key of a file record less its id (shared.keys.file('')), ARGV[4] '1' newest first, else
--   oldest first, ARGV[5] only files of this purpose ('': any)
-- Returns false if ARGV[1] is not one of the user's files, else {has_more (0/1), record JSON, ...}.
local newest = ARGV[4] == '1'
local start = 0
if ARGV[1] ~= '' then
  local rank
  if newest then
    rank = redis.call('ZREVRANK', KEYS[1], ARGV[1])
  else
    rank = redis.call('ZRANK', KEYS[1], ARGV[1])
  end
  if not rank then
    return false
  end
  start = rank + 1
end
local limit = tonumber(ARGV[2])
local wanted = '"purpose":"' .. ARGV[5] .. '"'
local page, gone, full = {0}, {}, false
while not full do
  local ids
  if newest then
    ids = redis.call('ZREVRANGE', KEYS[1], start, start + 99)
  else
    ids = redis.call('ZRANGE', KEYS[1], start, start + 99)
  end
  for _, id in ipairs(ids) do
    local record = redis.call('GET', ARGV[3] .. id)
    if not record then
      gone[#gone + 1] = id
    elseif ARGV[5] == '' or string.find(record, wanted, 1, true) then
      if #page - 1 == limit then -- one more than the page holds: there is a next page
        page[1] = 1
        full = true
        break
      end
      page[#page + 1] = record
    end
  end
  if #ids < 100 then
    break
  end
  start = start + #ids
end
for _, id in ipairs(gone) do
  redis.call('ZREM', KEYS[1], id)
end
return page
