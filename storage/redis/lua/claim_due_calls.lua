-- Claim the calls whose deadline has passed, for one node, for a lease: every node sweeps,
-- and a claimed call is pushed out of the others' reach until the lease ends (so a node that
-- dies holding a claim only delays the call, it never strands it).
-- KEYS[1] call deadlines zset. ARGV[1] now ms, ARGV[2] lease ms, ARGV[3] max entries.
-- Returns the claimed call ids.
local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, tonumber(ARGV[3]))
local lease_until = tonumber(ARGV[1]) + tonumber(ARGV[2])
for _, call_id in ipairs(due) do
  redis.call('ZADD', KEYS[1], lease_until, call_id)
end
return due
