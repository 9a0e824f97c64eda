-- stats: ARGV: prefix. Returns live messages, bytes charged, expired, consumed, contested.
local prefix = ARGV[1]
local st = redis.call('HMGET', prefix .. 'st', 'expired', 'consumed', 'contested')
local charged = redis.call('HGET', prefix .. 'q', 'charged')
return {
  redis.call('ZCARD', prefix .. 'x'),
  tonumber(charged or '0'),
  tonumber(st[1] or '0'),
  tonumber(st[2] or '0'),
  tonumber(st[3] or '0'),
}
