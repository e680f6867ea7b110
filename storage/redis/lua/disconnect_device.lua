-- Remove one connection. KEYS[1] user's devices zset, KEYS[2] global expiry zset,
-- KEYS[3] user's last-seen key. ARGV[1] member, ARGV[2] global member, ARGV[3] now ms.
-- Returns 1 when this was the user's last live connection (the user went offline).
local removed = redis.call('ZREM', KEYS[1], ARGV[1])
redis.call('ZREM', KEYS[2], ARGV[2])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ARGV[3])
if removed == 1 and redis.call('ZCARD', KEYS[1]) == 0 then
  redis.call('SET', KEYS[3], ARGV[3])
  return 1
end
return 0
