-- stats: ARGV: prefix. Returns the counters of P st and the size of the expiry index.
local prefix = ARGV[1]
local f = redis.call('HMGET', prefix .. 'st', 'messages', 'payload', 'charged', 'expired',
  'consumed', 'contested')
local out = {}
for i = 1, 6 do
  out[i] = tonumber(f[i] or '0')
end
out[7] = redis.call('ZCARD', prefix .. 'x')
return out
