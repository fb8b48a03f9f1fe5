-- Replace a chat's automatic title (a model's better one); a title a user set stays. Activity time stays.
--   KEYS[1] the chat (hash); ARGV[1] owner, ARGV[2] the title
-- Returns 1 (replaced) or 0 (not the owner's chat, or its title is the user's).
local chat = redis.call('HMGET', KEYS[1], 'owner', 'title_auto')
if chat[1] ~= ARGV[1] or chat[2] ~= '1' then
  return 0
end
redis.call('HSET', KEYS[1], 'title', ARGV[2])
return 1
