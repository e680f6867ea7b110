-- Push back the expiry of a node's live connections (its heartbeat).
-- KEYS[1] global expiry zset. ARGV[1] expires_at ms, ARGV[2] key ttl ms, ARGV[3] key prefix,
-- then triples: user, member (node|conn|device), global member.
-- Only connections still registered are refreshed (XX), so a swept one is not resurrected.
local n = 0
for i = 4, #ARGV, 3 do
  local ukey = ARGV[3] .. ':devices:' .. ARGV[i]
  n = n + redis.call('ZADD', KEYS[1], 'XX', 'CH', ARGV[1], ARGV[i + 2])
  redis.call('ZADD', ukey, 'XX', ARGV[1], ARGV[i + 1])
  redis.call('PEXPIRE', ukey, ARGV[2])
end
return n
