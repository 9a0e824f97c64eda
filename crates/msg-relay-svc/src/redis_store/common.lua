-- Shared by every script of the Redis message store (prepended to each).
--
-- Layout, under a prefix P (all keys of one relay deployment):
--   P m:<id hex>  hash: 'n' next candidate number, 'live' live candidates, and per candidate k
--                 k:p payload, k:m "readers|expiry ms|bytes charged|address|connection|source"
--                 (connection '' for HTTP), k:d readers that consumed it (",1,3,")
--   P x           sorted set: expiry index, member "<id hex>:<k>", score = expiry
--   P q           hash: 'charged' bytes held in all, 'a:<address>' and 'c:<replica:conn>'
--                 bytes held per client address and per WebSocket connection
--   P st          hash: expired, consumed, contested (the figures of /metrics)
-- Live messages = ZCARD of P x. Expiry times are the Redis server's clock (TIME), so the
-- replicas' clocks do not matter. No key carries a Redis TTL: every removal goes through
-- `remove`, so the quota counters always equal what is held (Redis must not evict keys:
-- maxmemory-policy noeviction).

local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end

-- readers, expiry, charge, address, connection, source of a k:m value.
local function parse_meta(meta)
  local r, e, c, a, q, s = string.match(meta, '^(%d+)|(%d+)|(%d+)|([^|]*)|([^|]*)|(.*)$')
  return tonumber(r), tonumber(e), tonumber(c), a, q, s
end

-- Takes `c` bytes back from the quota field `field` of P q, dropping it at zero.
local function uncharge(q, field, c)
  if redis.call('HINCRBY', q, field, -c) <= 0 then
    redis.call('HDEL', q, field)
  end
end

-- Removes candidate k of the message hash m (id hex `idhex`) and gives its bytes back.
-- Returns whether it was there.
local function remove(prefix, m, idhex, k)
  local meta = redis.call('HGET', m, k .. ':m')
  if not meta then
    return false
  end
  local _, _, c, a, conn = parse_meta(meta)
  local q = prefix .. 'q'
  redis.call('HINCRBY', q, 'charged', -c)
  uncharge(q, 'a:' .. a, c)
  if conn ~= '' then
    uncharge(q, 'c:' .. conn, c)
  end
  redis.call('ZREM', prefix .. 'x', idhex .. ':' .. k)
  redis.call('HDEL', m, k .. ':p', k .. ':m', k .. ':d')
  local live = redis.call('HINCRBY', m, 'live', -1)
  if live == 1 then
    redis.call('HINCRBY', prefix .. 'st', 'contested', -1)
  end
  if live <= 0 then
    -- Numbers restart once no candidate is left, as in the memory store.
    redis.call('DEL', m)
  end
  return true
end
