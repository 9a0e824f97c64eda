-- put: KEYS[1] the message hash. ARGV: prefix, id (hex), id (32 raw bytes), source, ttl ms,
-- readers, payload, address quota field, connection quota field ('' for none), total limit,
-- per-connection limit, per-address limit, per-message overhead, largest payload sent along
-- with the wake-up.
-- Returns {0, expired} stored, {1, expired} duplicate, {2, expired} conflict,
-- {3, held, limit} store full, {4, held, limit} connection quota, {5, held, limit} address quota.
local m = KEYS[1]
local prefix, idhex, idraw, source = ARGV[1], ARGV[2], ARGV[3], ARGV[4]
local ttl, readers, payload = tonumber(ARGV[5]), ARGV[6], ARGV[7]
local addrf, connf = ARGV[8], ARGV[9]
local total, per_conn, per_addr = tonumber(ARGV[10]), tonumber(ARGV[11]), tonumber(ARGV[12])
local overhead, inline = tonumber(ARGV[13]), tonumber(ARGV[14])
local st = prefix .. 'st'
local now = now_ms()

-- Expired candidates of this id do not count (lazy expiry).
local expired = 0
local n = tonumber(redis.call('HGET', m, 'n') or '0')
for k = 0, n - 1 do
  local e = redis.call('HGET', m, k .. ':e')
  if e and tonumber(e) <= now and remove(prefix, m, k) then
    expired = expired + 1
  end
end
if expired > 0 then
  redis.call('HINCRBY', st, 'expired', expired)
end

n = tonumber(redis.call('HGET', m, 'n') or '0')
for k = 0, n - 1 do
  local f = redis.call('HMGET', m, k .. ':p', k .. ':s')
  if f[1] then
    if f[1] == payload then
      return {1, expired}
    end
    if f[2] == source then
      return {2, expired}
    end
  end
end
if n >= 65536 then
  return {2, expired}
end

local len = string.len(payload)
local c = len + overhead
local held = tonumber(redis.call('HGET', st, 'charged') or '0')
if held + c > total then
  return {3, held, total}
end
if connf ~= '' then
  held = tonumber(redis.call('HGET', prefix .. 'qc', connf) or '0')
  if held + c > per_conn then
    return {4, held, per_conn}
  end
end
held = tonumber(redis.call('HGET', prefix .. 'qa', addrf) or '0')
if held + c > per_addr then
  return {5, held, per_addr}
end

local k = n
local expires = now + ttl
local member = idhex .. ':' .. k
redis.call('HSET', m, 'n', n + 1, k .. ':p', payload, k .. ':s', source, k .. ':r', readers,
  k .. ':e', expires, k .. ':c', c, k .. ':l', len, k .. ':a', addrf, k .. ':q', connf,
  k .. ':x', member)
if redis.call('HINCRBY', m, 'live', 1) == 2 then
  redis.call('HINCRBY', st, 'contested', 1)
end
redis.call('HINCRBY', st, 'charged', c)
redis.call('HINCRBY', st, 'payload', len)
redis.call('HINCRBY', st, 'messages', 1)
redis.call('HINCRBY', prefix .. 'qa', addrf, c)
if connf ~= '' then
  redis.call('HINCRBY', prefix .. 'qc', connf, c)
end
redis.call('ZADD', prefix .. 'x', expires, member)

-- Wake the waiters on every replica: id, candidate number, and the payload when small.
local wake = idraw .. string.char(math.floor(k / 256), k % 256)
if len <= inline then
  wake = wake .. '\1' .. payload
else
  wake = wake .. '\0'
end
redis.call('PUBLISH', prefix .. 'wake', wake)
return {0, expired}
