-- Delete a file's record if it is the owner's.
--   KEYS[1] the record, KEYS[2] the owner's files (zset); ARGV[1] the owner, ARGV[2] the file id
-- Returns 1 if it was deleted, 0 if there is no such file of the owner's.
local record = redis.call('GET', KEYS[1])
if not record or cjson.decode(record).owner ~= ARGV[1] then
  return 0
end
redis.call('DEL', KEYS[1])
redis.call('ZREM', KEYS[2], ARGV[2])
return 1
