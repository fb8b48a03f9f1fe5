-- One admission, atomically, on the Redis server's clock: a request is admitted only if it is within all of
-- its principal's limits, and then all three are charged at once.
--   KEYS[1] requests/min: GCRA, the theoretical arrival time (ms) of the next request
--   KEYS[2] tokens/min: token bucket, hash {tokens, ts}
--   KEYS[3] concurrent streams: sorted set, job id -> lease expiry (ms)
--   ARGV: rpm, tpm, streams (0 = unlimited each), cost (tokens reserved), job id, lease ttl (ms)
-- Returns {admitted (1/0), refused by ("" / "requests" / "tokens" / "streams"), retry after (ms),
--          requests remaining, requests reset (ms), tokens remaining, tokens reset (ms)}
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local rpm, tpm, streams = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local cost, job, lease_ttl = tonumber(ARGV[4]), ARGV[5], tonumber(ARGV[6])
local WINDOW = 60000

local refused, retry = '', 0
local rem_req, reset_req, rem_tok, reset_tok = -1, 0, -1, 0

-- requests per minute (GCRA: a burst of rpm, then one every 60/rpm s)
local new_tat = 0
if rpm > 0 then
  local interval = WINDOW / rpm
  local tat = tonumber(redis.call('GET', KEYS[1])) or now
  if tat < now then tat = now end
  new_tat = tat + interval
  if new_tat - now > WINDOW then
    refused, retry = 'requests', new_tat - now - WINDOW
    rem_req, reset_req = 0, tat - now
  else
    rem_req, reset_req = math.floor((WINDOW - (new_tat - now)) / interval), new_tat - now
  end
end

-- tokens per minute (a bucket of tpm, refilled at tpm per minute)
local tokens = 0
if tpm > 0 then
  local bucket = redis.call('HMGET', KEYS[2], 'tokens', 'ts')
  tokens = tonumber(bucket[1]) or tpm
  local ts = tonumber(bucket[2]) or now
  tokens = math.min(tpm, tokens + math.max(0, now - ts) * tpm / WINDOW)
  if tokens < cost then
    if refused == '' then refused, retry = 'tokens', math.ceil((cost - tokens) * WINDOW / tpm) end
    rem_tok, reset_tok = math.floor(math.max(tokens, 0)), math.ceil((tpm - tokens) * WINDOW / tpm)
  else
    rem_tok, reset_tok = math.floor(tokens - cost), math.ceil((tpm - tokens + cost) * WINDOW / tpm)
  end
end

-- concurrent streams (leases that their holder renews; a dead holder's lease runs out)
if streams > 0 then
  redis.call('ZREMRANGEBYSCORE', KEYS[3], '-inf', now)
  if redis.call('ZCARD', KEYS[3]) >= streams and refused == '' then
    refused = 'streams'
    local first = redis.call('ZRANGE', KEYS[3], 0, 0, 'WITHSCORES')
    retry = math.max(1000, math.min(lease_ttl, tonumber(first[2]) - now))
  end
end

if refused ~= '' then
  return {0, refused, math.ceil(retry), rem_req, math.ceil(reset_req), rem_tok, reset_tok}
end
if rpm > 0 then redis.call('SET', KEYS[1], new_tat, 'PX', math.ceil(new_tat - now) + 1000) end
if tpm > 0 then
  redis.call('HSET', KEYS[2], 'tokens', tokens - cost, 'ts', now)
  redis.call('PEXPIRE', KEYS[2], WINDOW + 1000)
end
if streams > 0 then
  redis.call('ZADD', KEYS[3], now + lease_ttl, job)
  redis.call('PEXPIRE', KEYS[3], lease_ttl + 1000)
end
return {1, '', 0, rem_req, math.ceil(reset_req), rem_tok, reset_tok}
