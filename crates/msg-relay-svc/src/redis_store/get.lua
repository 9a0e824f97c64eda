-- get: KEYS[1] the message hash. ARGV: first candidate number accepted.
-- Returns {k, payload} for the first live candidate numbered from or later, or nil.
local m = KEYS[1]
local from = tonumber(ARGV[1])
local first = redis.call('HMGET', m, 'n', from .. ':p', from .. ':m')
if not first[1] then
  return false
end
local now = now_ms()
if first[3] then
  local _, e = parse_meta(first[3])
  if e > now then
    return {from, first[2]}
  end
end
local n = tonumber(first[1])
for k = from + 1, n - 1 do
  local f = redis.call('HMGET', m, k .. ':p', k .. ':m')
  if f[2] then
    local _, e = parse_meta(f[2])
    if e > now then
      return {k, f[1]}
    end
  end
end
return false
