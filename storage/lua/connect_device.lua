-- Register one live connection of a user; refuse it past the per-user device limit.
-- KEYS[1] user's devices zset, KEYS[2] global expiry zset
-- ARGV[1] member (node|conn|device), ARGV[2] expires_at ms, ARGV[3] now ms,
-- ARGV[4] max devices, ARGV[5] global member (user|node|conn|device), ARGV[6] key ttl ms
-- Returns -1 when refused, 1 when the user just came online, 0 otherwise.
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ARGV[3])
local live = redis.call('ZCARD', KEYS[1])
if live >= tonumber(ARGV[4]) and not redis.call('ZSCORE', KEYS[1], ARGV[1]) then
  return -1
end
redis.call('ZADD', KEYS[1], ARGV[2], ARGV[1])
redis.call('PEXPIRE', KEYS[1], ARGV[6])
redis.call('ZADD', KEYS[2], ARGV[2], ARGV[5])
if live == 0 then return 1 end
return 0
