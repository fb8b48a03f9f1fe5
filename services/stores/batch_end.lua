-- End a finalizing batch: its status becomes how it ends (ends_as), with that status's time and its files;
-- its line results go (the files hold them), and it leaves the set of batches not ended yet.
--   KEYS[1] the batch (hash), KEYS[2] its results (hash), KEYS[3] the batches not ended yet (set)
--   ARGV[1] the batch id, ARGV[2] now (unix s), ARGV[3] the output file id ('': none), ARGV[4] the error
--   file id ('': none)
-- Returns 1 if it ended now, 0 if it was not finalizing.
if redis.call('HGET', KEYS[1], 'status') ~= 'finalizing' then
  return 0
end
local ends = redis.call('HGET', KEYS[1], 'ends_as') or 'completed'
redis.call('HSET', KEYS[1], 'status', ends, ends .. '_at', ARGV[2])
redis.call('HDEL', KEYS[1], 'ends_as')
if ARGV[3] ~= '' then
  redis.call('HSET', KEYS[1], 'output_file_id', ARGV[3])
end
if ARGV[4] ~= '' then
  redis.call('HSET', KEYS[1], 'error_file_id', ARGV[4])
end
redis.call('DEL', KEYS[2])
redis.call('SREM', KEYS[3], ARGV[1])
return 1
