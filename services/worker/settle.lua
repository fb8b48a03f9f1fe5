-- Once per job: count its usage, and settle the tokens its admission reserved with what it really used
-- (a refund, or a charge when it used more); on the Redis server's clock.
--   KEYS[1] the job's settled marker, KEYS[2] the subject's token bucket (hash tokens, ts; see admission.lua),
--   KEYS[3] the user's usage hash of the day
--   ARGV: marker ttl (s), tokens/min, reserved, used, usage field prefix, prompt, completion, usage ttl (s)
if not redis.call('SET', KEYS[1], '1', 'NX', 'EX', ARGV[1]) then
  return 0
end
local tpm, reserved, used = tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4])
if tpm > 0 and reserved ~= used then
  local t = redis.call('TIME')
  local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
  local bucket = redis.call('HMGET', KEYS[2], 'tokens', 'ts')
  local tokens = tonumber(bucket[1]) or tpm
  local ts = tonumber(bucket[2]) or now
  tokens = math.min(tpm, math.min(tpm, tokens + math.max(0, now - ts) * tpm / 60000) + reserved - used)
  redis.call('HSET', KEYS[2], 'tokens', tokens, 'ts', now)
  redis.call('PEXPIRE', KEYS[2], math.max(1000, math.ceil((tpm - tokens) * 60000 / tpm) + 1000))
end
local prefix = ARGV[5]
redis.call('HINCRBY', KEYS[3], prefix .. '|requests', 1)
redis.call('HINCRBY', KEYS[3], prefix .. '|prompt_tokens', tonumber(ARGV[6]))
redis.call('HINCRBY', KEYS[3], prefix .. '|completion_tokens', tonumber(ARGV[7]))
redis.call('EXPIRE', KEYS[3], tonumber(ARGV[8]))
return 1
