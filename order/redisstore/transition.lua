-- Reject, revoke, or just expire an order whose time is up.
-- KEYS: order, approvals
-- ARGV: action (reject|revoke|touch), now ms, role, approver, reason
local st = redis.call('HGET', KEYS[1], 'state')
if not st then
  return redis.error_reply('NOT_FOUND')
end
local function close(state)
  redis.call('HSET', KEYS[1], 'state', state, 'reason', ARGV[5], 'closed_at', ARGV[2])
  -- Approvals carry re-encrypted shares: they go with the order's end.
  redis.call('DEL', KEYS[2])
  local sk = redis.call('HGET', KEYS[1], 'subject_key')
  local idx = 'sg:subject:{' .. sk .. '}'
  local id = string.match(KEYS[1], '{(.*)}')
  if redis.call('GET', idx) == id then
    redis.call('DEL', idx)
  end
end
local exp = tonumber(redis.call('HGET', KEYS[1], 'expires_at'))
if (st == 'pending' or st == 'active') and tonumber(ARGV[2]) >= exp then
  close('expired')
  st = 'expired'
end
if ARGV[1] == 'touch' then
  return st
end
if ARGV[1] == 'revoke' then
  if st ~= 'pending' and st ~= 'active' then
    return redis.error_reply('NOT_ACTIVE ' .. st)
  end
  close('revoked')
  return 'revoked'
end
if ARGV[1] == 'reject' then
  if st ~= 'pending' then
    if st == 'expired' then
      return redis.error_reply('EXPIRED')
    end
    return redis.error_reply('NOT_PENDING ' .. st)
  end
  if ARGV[4] == redis.call('HGET', KEYS[1], 'requester') then
    return redis.error_reply('SELF_APPROVAL')
  end
  redis.call('HSET', KEYS[1], 'rejection:' .. ARGV[3], ARGV[5])
  for role in string.gmatch(redis.call('HGET', KEYS[1], 'veto') or '', '[^,]+') do
    if role == ARGV[3] then
      close('rejected')
      return 'rejected'
    end
  end
  return 'recorded'
end
return redis.error_reply('unknown action')
