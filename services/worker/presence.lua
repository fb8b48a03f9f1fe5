-- Announce a worker alive, on the Redis server's clock: the API's sweeper judges a worker's silence by the
-- same clock, so hosts whose clocks disagree cannot make a live worker look dead.
--   KEYS[1] the workers' heartbeats (zset: name -> last heartbeat, unix s); ARGV[1] name, ARGV[2] forget a
--   worker silent this long (s)
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
redis.call('ZADD', KEYS[1], now, ARGV[1])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - tonumber(ARGV[2]))
return 1
