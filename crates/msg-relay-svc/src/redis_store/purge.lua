-- purge: ARGV: prefix, most entries to look at.
-- Returns {removed, entries looked at}; the caller repeats while the batch was full.
local prefix, limit = ARGV[1], tonumber(ARGV[2])
local now = now_ms()
local due = redis.call('ZRANGEBYSCORE', prefix .. 'x', '-inf', now, 'LIMIT', 0, limit)
local removed = 0
for _, member in ipairs(due) do
  local idhex, k = string.match(member, '^(%x+):(%d+)$')
  local m = prefix .. 'm:' .. (idhex or '')
  local e = idhex and redis.call('HGET', m, k .. ':e')
  if e and tonumber(e) <= now and remove(prefix, m, k) then
    removed = removed + 1
  else
    -- An entry without its candidate (cannot happen unless keys were removed by hand).
    redis.call('ZREM', prefix .. 'x', member)
  end
end
if removed > 0 then
  redis.call('HINCRBY', prefix .. 'st', 'expired', removed)
end
return {removed, #due}
