-- File a pending order.
-- KEYS: order, subject index, approvals
-- ARGV: id, body, quorum, requester, subject, expires_at ms, keys expire at ms, new_facts 0|1, veto roles, subject key
if redis.call('EXISTS', KEYS[1]) == 1 then
  return redis.error_reply('EXISTS')
end
local open = redis.call('GET', KEYS[2])
if open and ARGV[8] ~= '1' then
  local st = redis.call('HGET', 'sg:order:{' .. open .. '}', 'state')
  if st == 'pending' or st == 'active' then
    return redis.error_reply('SUBJECT_BUSY')
  end
end
redis.call('HSET', KEYS[1], 'state', 'pending', 'body', ARGV[2], 'quorum', ARGV[3],
  'requester', ARGV[4], 'subject', ARGV[5], 'expires_at', ARGV[6], 'approvals', 0,
  'veto', ARGV[9], 'subject_key', ARGV[10], 'keys_expire_at', ARGV[7])
redis.call('PEXPIREAT', KEYS[1], ARGV[7])
redis.call('SET', KEYS[2], ARGV[1], 'PXAT', ARGV[7])
return 'ok'
