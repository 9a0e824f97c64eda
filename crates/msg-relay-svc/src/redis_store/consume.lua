-- consume: KEYS[1] the message hash. ARGV: prefix, id (hex), candidate number, reader.
-- Returns 1 when this was the last announced reader (the candidate is removed), else 0.
local m = KEYS[1]
local prefix, idhex, k, reader = ARGV[1], ARGV[2], ARGV[3], ARGV[4]
local f = redis.call('HMGET', m, k .. ':m', k .. ':d')
if not f[1] then
  return 0
end
local readers = parse_meta(f[1])
if readers == 0 then
  return 0
end
local done = f[2] or ','
if string.find(done, ',' .. reader .. ',', 1, true) then
  return 0
end
done = done .. reader .. ','
local _, commas = string.gsub(done, ',', '')
if commas - 1 >= readers then
  remove(prefix, m, idhex, k)
  redis.call('HINCRBY', prefix .. 'st', 'consumed', 1)
  return 1
end
redis.call('HSET', m, k .. ':d', done)
return 0
