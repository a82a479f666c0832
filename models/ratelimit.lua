-- All windows of one rate-limit class for one subject, checked and consumed atomically.
--
-- Sliding-window log: KEYS[1] is a sorted set of the subject's admitted requests scored by their
-- time in microseconds, trimmed to the longest window. A window of length w with limit n admits a
-- request when fewer than n entries lie in (now - w, now]. Exact: no boundary error, memory is
-- O(limit of the longest window) because refused requests are never recorded.
--
-- ARGV[1]  now in microseconds, or 0 to use the Redis server's clock (TIME)
-- ARGV[2]  number of windows k, then k pairs: window length in microseconds, limit
-- Returns  {allowed (1|0), refused window index (0 if none), retry after (us),
--           then per window: remaining, reset (us until its oldest counted entry leaves)}

local key = KEYS[1]
local now = tonumber(ARGV[1])
if now == 0 then
  local clock = redis.call('TIME')
  now = tonumber(clock[1]) * 1000000 + tonumber(clock[2])
end
local count = tonumber(ARGV[2])

local lengths, limits, longest = {}, {}, 0
for i = 1, count do
  lengths[i] = tonumber(ARGV[1 + 2 * i])
  limits[i] = tonumber(ARGV[2 + 2 * i])
  if lengths[i] > longest then longest = lengths[i] end
end

-- Numbers go through string.format: Lua's tostring keeps only 14 significant digits.
local function since(length)
  return string.format('(%d', now - length)
end

local function entry_at(length, rank)
  local found = redis.call('ZRANGEBYSCORE', key, since(length), '+inf', 'WITHSCORES', 'LIMIT', rank, 1)
  if found[2] == nil then return nil end
  return tonumber(found[2])
end

redis.call('ZREMRANGEBYSCORE', key, '-inf', string.format('%d', now - longest))

local used, refused, retry = {}, 0, 0
for i = 1, count do
  used[i] = redis.call('ZCOUNT', key, since(lengths[i]), '+inf')
  if used[i] >= limits[i] then
    -- The request fits once enough of the oldest counted entries have left this window.
    local wait = lengths[i]
    local leaving = limits[i] > 0 and entry_at(lengths[i], used[i] - limits[i]) or nil
    if leaving ~= nil then wait = leaving + lengths[i] - now end
    if wait > retry or refused == 0 then refused, retry = i, wait end
  end
end

if refused == 0 then
  -- The set's size makes members unique even when two requests share a microsecond.
  local member = string.format('%d-%d', now, redis.call('ZCARD', key))
  redis.call('ZADD', key, string.format('%d', now), member)
  redis.call('PEXPIRE', key, math.ceil(longest / 1000))
  for i = 1, count do used[i] = used[i] + 1 end
end

local result = {refused == 0 and 1 or 0, refused, retry}
for i = 1, count do
  local oldest = entry_at(lengths[i], 0)
  result[#result + 1] = math.max(0, limits[i] - used[i])
  result[#result + 1] = oldest and (oldest + lengths[i] - now) or 0
end
return result
