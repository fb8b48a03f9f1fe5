-- Renew a concurrent-stream lease, on the Redis server's clock, if it is still held.
--   KEYS[1] the subject's leases; ARGV: job id, lease ttl (ms)
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local renewed = redis.call('ZADD', KEYS[1], 'XX', 'CH', now + tonumber(ARGV[2]), ARGV[1])
redis.call('PEXPIRE', KEYS[1], tonumber(ARGV[2]) + 1000)
return renewed
