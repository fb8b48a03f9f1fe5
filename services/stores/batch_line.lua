-- Record a line's result once: the first result for a custom_id is kept, and only it moves the batch's
-- counters and its owner's usage (a line run twice, its worker having died after the upstream answered, is
-- recorded and counted once).
--   KEYS[1] the batch (hash), KEYS[2] its results (hash), KEYS[3] the owner's usage today (hash)
--   ARGV[1] custom_id, ARGV[2] the result (JSON), ARGV[3] '1' answered / '0' failed, ARGV[4] input tokens,
--   ARGV[5] output tokens, ARGV[6..8] the usage fields of requests, prompt and completion tokens, ARGV[9] the
--   usage hash's TTL (s)
-- Returns 1 if this result was recorded, 0 if the line had one already.
if redis.call('HSETNX', KEYS[2], ARGV[1], ARGV[2]) == 0 then
  return 0
end
if ARGV[3] == '1' then
  redis.call('HINCRBY', KEYS[1], 'completed', 1)
else
  redis.call('HINCRBY', KEYS[1], 'failed', 1)
end
redis.call('HINCRBY', KEYS[1], 'input_tokens', ARGV[4])
redis.call('HINCRBY', KEYS[1], 'output_tokens', ARGV[5])
redis.call('HINCRBY', KEYS[3], ARGV[6], 1)
redis.call('HINCRBY', KEYS[3], ARGV[7], ARGV[4])
redis.call('HINCRBY', KEYS[3], ARGV[8], ARGV[5])
redis.call('EXPIRE', KEYS[3], ARGV[9])
return 1
