-- Renew a deferred notice: request, then approvals up to the quorum.
-- Atomic like approve.lua: the quorum check and the change happen here.
-- KEYS: order, deferral
-- ARGV: op (request|approve), now ms, then
--   request: until ms, statement (hex), ground
--   approve: slot, role, approver, statement (hex)
local st = redis.call('HGET', KEYS[1], 'state')
if not st then
  return redis.error_reply('NOT_FOUND')
end
if tonumber(ARGV[2]) >= tonumber(redis.call('HGET', KEYS[1], 'expires_at')) then
  return redis.error_reply('EXPIRED')
end
if st ~= 'active' then
  return redis.error_reply('NOT_ACTIVE ' .. st)
end
if ARGV[1] == 'request' then
  if tonumber(redis.call('HGET', KEYS[1], 'deferral_renewals') or '0') >= 1 then
    return redis.error_reply('RENEWED')
  end
  if redis.call('EXISTS', KEYS[2]) == 1 then
    return redis.error_reply('DEFERRAL_PENDING')
  end
  redis.call('HSET', KEYS[2], 'until', ARGV[3], 'statement', ARGV[4], 'ground', ARGV[5], 'approvals', 0)
  redis.call('PEXPIREAT', KEYS[2], redis.call('HGET', KEYS[1], 'keys_expire_at'))
  return 'ok'
end
if ARGV[1] == 'approve' then
  if redis.call('HGET', KEYS[2], 'statement') ~= ARGV[6] then
    return redis.error_reply('NO_DEFERRAL')
  end
  if ARGV[5] == redis.call('HGET', KEYS[1], 'requester') then
    return redis.error_reply('SELF_APPROVAL')
  end
  if ARGV[5] == redis.call('HGET', KEYS[1], 'subject') then
    return redis.error_reply('SUBJECT_APPROVAL')
  end
  if redis.call('HEXISTS', KEYS[2], 'slot:' .. ARGV[3]) == 1 then
    return redis.error_reply('DUPLICATE_SLOT')
  end
  if redis.call('HEXISTS', KEYS[2], 'role:' .. ARGV[4]) == 1 then
    return redis.error_reply('DUPLICATE_ROLE')
  end
  if redis.call('HEXISTS', KEYS[2], 'approver:' .. ARGV[5]) == 1 then
    return redis.error_reply('DUPLICATE_APPROVER')
  end
  redis.call('HSET', KEYS[2], 'slot:' .. ARGV[3], '1', 'role:' .. ARGV[4], ARGV[3], 'approver:' .. ARGV[5], ARGV[3])
  local n = redis.call('HINCRBY', KEYS[2], 'approvals', 1)
  if n >= tonumber(redis.call('HGET', KEYS[1], 'quorum')) then
    redis.call('HSET', KEYS[1], 'deferral_until', redis.call('HGET', KEYS[2], 'until'), 'deferral_renewals', 1)
    redis.call('DEL', KEYS[2])
    return {n, 1}
  end
  return {n, 0}
end
return redis.error_reply('unknown op')
