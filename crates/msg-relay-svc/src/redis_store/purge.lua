-- purge: ARGV: prefix, most entries to look at.
-- Returns {removed, entries looked at}; the caller repeats while the batch was full.
local prefix, limit = ARGV[1], tonumber(ARGV[2])
local now = now_ms()
local due = redis.call('ZRANGEBYSCORE', prefix .. 'x', '-inf', now, 'LIMIT', 0, limit)
local removed = 0
for _, member in ipairs(due) do
  local idhex, k = string.match(member, '^(%x+):(%d+)$')
  local stale = true
  if idhex then
    local m = prefix .. 'm:' .. idhex
    local meta = redis.call('HGET', m, k .. ':m')
    if meta then
      stale = false
      local _, e = parse_meta(meta)
      if e <= now and remove(prefix, m, idhex, k) then
        removed = removed + 1
      end
    end
  end
  if stale then
    -- An entry without its candidate (only if keys were changed by hand).
    redis.call('ZREM', prefix .. 'x', member)
  end
end
if removed > 0 then
  redis.call('HINCRBY', prefix .. 'st', 'expired', removed)
end
return {removed, #due}
