-- Register one live connection of a user; refuse it past the per-user device limit.
-- KEYS[1] user's devices zset, KEYS[2] global expiry zset
-- ARGV[1] member (node|conn|device), ARGV[2] expires_at ms, ARGV[3] now ms,
-- ARGV[4] max devices, ARGV[5] global member (user|node|conn|device), ARGV[6] key ttl ms,
-- ARGV[7] device id, ARGV[8] user id
-- A device has one live connection: its earlier ones (left behind on a node that died, or
-- not yet noticed as closed) are replaced, so a phone reconnecting after a crash is never
-- refused as one device too many.
-- Returns {code, replaced...}: code -1 when refused, 1 when the user just came online, 0
-- otherwise; then the members (node|conn|device) of the same device this one replaced, so
-- their nodes can tell those sockets and close them.
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ARGV[3])
local suffix = '|' .. ARGV[7]
local same_device = {}
for _, member in ipairs(redis.call('ZRANGE', KEYS[1], 0, -1)) do
  if member ~= ARGV[1] and string.sub(member, -#suffix) == suffix then
    table.insert(same_device, member)
  end
end
local live = redis.call('ZCARD', KEYS[1]) - #same_device
if live >= tonumber(ARGV[4]) and not redis.call('ZSCORE', KEYS[1], ARGV[1]) then
  return {-1}
end
for _, member in ipairs(same_device) do
  redis.call('ZREM', KEYS[1], member)
  redis.call('ZREM', KEYS[2], ARGV[8] .. '|' .. member)
end
redis.call('ZADD', KEYS[1], ARGV[2], ARGV[1])
redis.call('PEXPIRE', KEYS[1], ARGV[6])
redis.call('ZADD', KEYS[2], ARGV[2], ARGV[5])
local code = 0
if live == 0 then code = 1 end
local answer = {code}
for _, member in ipairs(same_device) do table.insert(answer, member) end
return answer
