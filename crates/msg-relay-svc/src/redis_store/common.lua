-- Shared by every script of the Redis message store (prepended to each).
--
-- Layout, under a prefix P (all keys of one relay deployment):
--   P m:<id hex>  hash: 'n' next candidate number, 'live' live candidates, and per candidate k
--                 the fields k:p payload, k:s source, k:r readers, k:e expiry (ms, server
--                 clock), k:c bytes charged, k:l payload length, k:a address quota field,
--                 k:q connection quota field ('' for none), k:x expiry-index member,
--                 k:d readers that consumed it (",1,3,")
--   P x           sorted set: expiry index, member "<id hex>:<k>", score = expiry
--   P st          hash: charged, payload, messages, expired, consumed, contested
--   P qa / P qc   hashes: bytes held per client address / per replica connection
-- No key carries a Redis TTL: every removal goes through `remove`, so the quota counters
-- always equal what is held (Redis must not evict keys: maxmemory-policy noeviction).

local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end

-- Removes candidate k of the message hash m and gives its bytes back. Returns whether it was
-- there.
local function remove(prefix, m, k)
  local f = redis.call('HMGET', m, k .. ':c', k .. ':l', k .. ':a', k .. ':q', k .. ':x')
  if not f[1] then
    return false
  end
  local c = tonumber(f[1])
  local st = prefix .. 'st'
  redis.call('HINCRBY', st, 'charged', -c)
  redis.call('HINCRBY', st, 'payload', -tonumber(f[2]))
  redis.call('HINCRBY', st, 'messages', -1)
  if redis.call('HINCRBY', prefix .. 'qa', f[3], -c) <= 0 then
    redis.call('HDEL', prefix .. 'qa', f[3])
  end
  if f[4] ~= '' and redis.call('HINCRBY', prefix .. 'qc', f[4], -c) <= 0 then
    redis.call('HDEL', prefix .. 'qc', f[4])
  end
  redis.call('ZREM', prefix .. 'x', f[5])
  redis.call('HDEL', m, k .. ':p', k .. ':s', k .. ':r', k .. ':e', k .. ':c', k .. ':l',
    k .. ':a', k .. ':q', k .. ':x', k .. ':d')
  local live = redis.call('HINCRBY', m, 'live', -1)
  if live == 1 then
    redis.call('HINCRBY', st, 'contested', -1)
  end
  if live <= 0 then
    -- Numbers restart once no candidate is left, as in the memory store.
    redis.call('DEL', m)
  end
  return true
end
