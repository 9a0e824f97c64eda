-- put: KEYS[1] the message hash. ARGV: prefix, id (hex), id (32 raw bytes), source, ttl ms,
-- readers, payload, address, connection ('' for none), total limit, per-connection limit,
-- per-address limit, per-message overhead, largest payload sent along with the wake-up.
-- Returns {0, expired} stored, {1, expired} duplicate, {2, expired} conflict,
-- {3, held, limit} store full, {4, held, limit} connection quota, {5, held, limit} address quota.
local m = KEYS[1]
local prefix, idhex, idraw, source = ARGV[1], ARGV[2], ARGV[3], ARGV[4]
local ttl, readers, payload = tonumber(ARGV[5]), ARGV[6], ARGV[7]
local addr, conn = ARGV[8], ARGV[9]
local total, per_conn, per_addr = tonumber(ARGV[10]), tonumber(ARGV[11]), tonumber(ARGV[12])
local overhead, inline = tonumber(ARGV[13]), tonumber(ARGV[14])
local now = now_ms()

local expired = 0
local n = tonumber(redis.call('HGET', m, 'n') or '0')
if n > 0 then
  -- Expired candidates of this id do not count (lazy expiry); an identical payload is a
  -- duplicate whoever sent it; otherwise a source's second payload is a conflict.
  local conflict = false
  for k = 0, n - 1 do
    local f = redis.call('HMGET', m, k .. ':p', k .. ':m')
    if f[2] then
      local _, e, _, _, _, s = parse_meta(f[2])
      if e <= now then
        if remove(prefix, m, idhex, k) then
          expired = expired + 1
        end
      elseif f[1] == payload then
        return {1, expired}
      elseif s == source then
        conflict = true
      end
    end
  end
  if expired > 0 then
    redis.call('HINCRBY', prefix .. 'st', 'expired', expired)
  end
  if conflict then
    return {2, expired}
  end
  n = tonumber(redis.call('HGET', m, 'n') or '0')
  if n >= 65536 then
    return {2, expired}
  end
end

local q = prefix .. 'q'
local len = string.len(payload)
local c = len + overhead
local held = redis.call('HMGET', q, 'charged', 'c:' .. conn, 'a:' .. addr)
local all, by_conn, by_addr = tonumber(held[1] or '0'), tonumber(held[2] or '0'), tonumber(held[3] or '0')
if all + c > total then
  return {3, all, total}
end
if conn ~= '' and by_conn + c > per_conn then
  return {4, by_conn, per_conn}
end
if by_addr + c > per_addr then
  return {5, by_addr, per_addr}
end

local k = n
local expires = now + ttl
redis.call('HSET', m, 'n', n + 1, k .. ':p', payload,
  k .. ':m', readers .. '|' .. expires .. '|' .. c .. '|' .. addr .. '|' .. conn .. '|' .. source)
if redis.call('HINCRBY', m, 'live', 1) == 2 then
  redis.call('HINCRBY', prefix .. 'st', 'contested', 1)
end
redis.call('HINCRBY', q, 'charged', c)
redis.call('HINCRBY', q, 'a:' .. addr, c)
if conn ~= '' then
  redis.call('HINCRBY', q, 'c:' .. conn, c)
end
redis.call('ZADD', prefix .. 'x', expires, idhex .. ':' .. k)

-- Wake the waiters on every replica: id, candidate number, and the payload when small.
local wake = idraw .. string.char(math.floor(k / 256), k % 256)
if len <= inline then
  wake = wake .. '\1' .. payload
else
  wake = wake .. '\0'
end
redis.call('PUBLISH', prefix .. 'wake', wake)
return {0, expired}
