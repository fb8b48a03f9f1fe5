-- Ask a batch of the owner's to stop: one still validating or running becomes `cancelling` (its runner stops
-- handing out lines and finishes it as `cancelled`); one past that is left as it is.
--   KEYS[1] the batch (hash); ARGV[1] the owner, ARGV[2] now (unix s)
-- Returns false if the batch is not the owner's, else its record (HGETALL).
if redis.call('HGET', KEYS[1], 'owner') ~= ARGV[1] then
  return false
end
local status = redis.call('HGET', KEYS[1], 'status')
if status == 'validating' or status == 'in_progress' then
  redis.call('HSET', KEYS[1], 'status', 'cancelling', 'cancelling_at', ARGV[2])
end
return redis.call('HGETALL', KEYS[1])
