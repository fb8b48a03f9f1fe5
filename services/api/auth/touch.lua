-- Record an API key's last use beside its record, for exactly as long as the record lives: a use racing a
-- revocation (which gives the record a TTL) must not leave a last-use key behind without one.
--   KEYS[1] the key's record, KEYS[2] its last use; ARGV[1] the time of use
local ttl = redis.call('PTTL', KEYS[1])
if ttl == -2 then return 0 end
if ttl > 0 then
  redis.call('SET', KEYS[2], ARGV[1], 'PX', ttl)
else
  redis.call('SET', KEYS[2], ARGV[1])
end
return 1
