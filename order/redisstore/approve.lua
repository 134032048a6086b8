-- Add one approval; activate at quorum. Atomic: the quorum check and the
-- state change happen in the same script as the write.
-- KEYS: order, approvals
-- ARGV: slot, role, approver, approval blob, now ms
local st = redis.call('HGET', KEYS[1], 'state')
if not st then
  return redis.error_reply('NOT_FOUND')
end
local exp = tonumber(redis.call('HGET', KEYS[1], 'expires_at'))
if tonumber(ARGV[5]) >= exp then
  if st == 'pending' or st == 'active' then
    redis.call('HSET', KEYS[1], 'state', 'expired')
    redis.call('DEL', KEYS[2])
  end
  return redis.error_reply('EXPIRED')
end
if st ~= 'pending' then
  return redis.error_reply('NOT_PENDING ' .. st)
end
if ARGV[3] == redis.call('HGET', KEYS[1], 'requester') then
  return redis.error_reply('SELF_APPROVAL')
end
if ARGV[3] == redis.call('HGET', KEYS[1], 'subject') then
  return redis.error_reply('SUBJECT_APPROVAL')
end
if redis.call('HEXISTS', KEYS[2], 'slot:' .. ARGV[1]) == 1 then
  return redis.error_reply('DUPLICATE_SLOT')
end
if redis.call('HEXISTS', KEYS[2], 'role:' .. ARGV[2]) == 1 then
  return redis.error_reply('DUPLICATE_ROLE')
end
if redis.call('HEXISTS', KEYS[2], 'approver:' .. ARGV[3]) == 1 then
  return redis.error_reply('DUPLICATE_APPROVER')
end
redis.call('HSET', KEYS[2], 'slot:' .. ARGV[1], ARGV[4], 'role:' .. ARGV[2], ARGV[1], 'approver:' .. ARGV[3], ARGV[1])
redis.call('PEXPIREAT', KEYS[2], redis.call('HGET', KEYS[1], 'keys_expire_at'))
local n = redis.call('HINCRBY', KEYS[1], 'approvals', 1)
if n >= tonumber(redis.call('HGET', KEYS[1], 'quorum')) then
  redis.call('HSET', KEYS[1], 'state', 'active', 'activated_at', ARGV[5])
  return {n, 1}
end
return {n, 0}
