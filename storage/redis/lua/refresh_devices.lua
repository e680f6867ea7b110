-- Push back the expiry of a node's live connections (its heartbeat).
-- KEYS[1] global expiry zset. ARGV[1] expires_at ms, ARGV[2] key ttl ms, ARGV[3] key prefix,
-- then triples: user, member (node|conn|device), global member.
-- The node holds these sockets, so a connection missing from Redis (Redis restarted empty, or
-- the sweep took it while this node was stalled) is registered again: presence is rebuilt
-- from live connections. Returns the users who thereby came back online.
local back = {}
for i = 4, #ARGV, 3 do
  local ukey = ARGV[3] .. ':devices:' .. ARGV[i]
  redis.call('ZADD', KEYS[1], ARGV[1], ARGV[i + 2])
  local added = redis.call('ZADD', ukey, ARGV[1], ARGV[i + 1])
  redis.call('PEXPIRE', ukey, ARGV[2])
  if added == 1 and redis.call('ZCARD', ukey) == 1 then
    table.insert(back, ARGV[i])
  end
end
return back
