-- Move a batch on, if it is where the step starts from.
--   KEYS[1] the batch (hash)
--   ARGV[1] the step: 'start' (validating -> in_progress) or 'finish' (in_progress or cancelling ->
--   finalizing, remembering how it ends: ARGV[3]), ARGV[2] now (unix s), ARGV[3] how it ends ('completed',
--   'cancelled' or 'expired'; a cancel asked meanwhile makes it 'cancelled')
-- Returns the batch's record (HGETALL), moved or not; false if there is no such batch.
local status = redis.call('HGET', KEYS[1], 'status')
if not status then
  return false
end
if ARGV[1] == 'start' and status == 'validating' then
  redis.call('HSET', KEYS[1], 'status', 'in_progress', 'in_progress_at', ARGV[2])
elseif ARGV[1] == 'finish' and (status == 'in_progress' or status == 'cancelling') then
  local ends = ARGV[3]
  if status == 'cancelling' then
    ends = 'cancelled'
  end
  redis.call('HSET', KEYS[1], 'status', 'finalizing', 'finalizing_at', ARGV[2], 'ends_as', ends)
end
return redis.call('HGETALL', KEYS[1])
