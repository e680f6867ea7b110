-- Schedule the last push of coalesced bursts, keeping for each the newest content: jobs of
-- one burst are handled concurrently (by several nodes, and many at once within one), so the
-- one written last is not always the newest. A job replaces the scheduled content only when
-- its order (the recipient's seq) is higher; the due time of a scheduled job is kept (NX).
-- KEYS[1] delayed zset (job id -> due ms), KEYS[2] hash job id -> job, KEYS[3] hash job id
-- -> order. ARGV: for each job, its id, the job, its due ms and its order.
for i = 1, #ARGV, 4 do
  local id, job, due, order = ARGV[i], ARGV[i + 1], ARGV[i + 2], tonumber(ARGV[i + 3])
  local have = tonumber(redis.call('HGET', KEYS[3], id) or '-1')
  if order > have then
    redis.call('HSET', KEYS[2], id, job)
    redis.call('HSET', KEYS[3], id, order)
  end
  redis.call('ZADD', KEYS[1], 'NX', due, id)
end
return #ARGV / 4
