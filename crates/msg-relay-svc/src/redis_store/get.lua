-- get: KEYS[1] the message hash. ARGV: first candidate number accepted.
-- Returns {k, payload} for the first live candidate numbered from or later, or nil.
local m = KEYS[1]
local from = tonumber(ARGV[1])
local now = now_ms()
local n = tonumber(redis.call('HGET', m, 'n') or '0')
for k = from, n - 1 do
  local f = redis.call('HMGET', m, k .. ':p', k .. ':e')
  if f[1] and tonumber(f[2]) > now then
    return {k, f[1]}
  end
end
return false
