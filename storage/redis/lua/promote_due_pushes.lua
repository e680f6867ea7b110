-- Move the pushes whose time has come (retries after their backoff, the last push of a
-- coalesced burst) from the delayed set into the push stream, atomically: every node runs
-- this, and each delayed push enters the stream once.
-- KEYS[1] delayed zset (member: job id, score: due ms), KEYS[2] hash job id -> job,
-- KEYS[3] the push stream, KEYS[4] hash job id -> order (a burst's last push).
-- ARGV[1] now ms, ARGV[2] max jobs. Returns how many moved.
local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, tonumber(ARGV[2]))
for _, id in ipairs(due) do
  local job = redis.call('HGET', KEYS[2], id)
  redis.call('ZREM', KEYS[1], id)
  redis.call('HDEL', KEYS[2], id)
  redis.call('HDEL', KEYS[4], id)
  if job then
    redis.call('XADD', KEYS[3], '*', 'j', job)
  end
end
return #due
