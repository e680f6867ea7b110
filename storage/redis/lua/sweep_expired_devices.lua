-- Remove connections whose node stopped refreshing them (crashed or killed), exactly once
-- whichever node runs the sweep. KEYS[1] global expiry zset. ARGV[1] key prefix,
-- ARGV[2] now ms, ARGV[3] max entries, ARGV[4] ttl ms.
-- Returns a flat list: user, last_seen ms, ... for each user who went offline.
local expired = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[2], 'LIMIT', 0, tonumber(ARGV[3]))
local offline = {}
for _, entry in ipairs(expired) do
  redis.call('ZREM', KEYS[1], entry)
  local sep = string.find(entry, '|', 1, true)
  local user = string.sub(entry, 1, sep - 1)
  local member = string.sub(entry, sep + 1)
  local ukey = ARGV[1] .. ':devices:' .. user
  local score = redis.call('ZSCORE', ukey, member)
  if score and tonumber(score) <= tonumber(ARGV[2]) then
    redis.call('ZREM', ukey, member)
    redis.call('ZREMRANGEBYSCORE', ukey, '-inf', ARGV[2])
    if redis.call('ZCARD', ukey) == 0 then
      local seen = tostring(math.floor(tonumber(score) - tonumber(ARGV[4])))
      redis.call('SET', ARGV[1] .. ':last_seen:' .. user, seen)
      table.insert(offline, user)
      table.insert(offline, seen)
    end
  end
end
return offline
