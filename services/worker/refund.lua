-- Give a subject's token bucket back what its jobs reserved and did not use (or take what they used beyond
-- it: a negative refund). A bucket that has expired is full already: nothing to give back.
--   KEYS[1] the token bucket (hash tokens, ts; see services/api/ratelimit/admission.lua); ARGV[1] tokens
if redis.call('EXISTS', KEYS[1]) == 1 then
  redis.call('HINCRBYFLOAT', KEYS[1], 'tokens', ARGV[1])
end
return 1
