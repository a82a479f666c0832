-- When the render a save needs should run: debounced per project, spaced per user, in one atomic call.
--
-- KEYS[1]  the project's key: the time (ms) its scheduled render is due, kept until that render starts
-- KEYS[2]  the user's key: the time (ms) of the user's next free render slot
-- ARGV[1]  debounce (ms): a save's render runs no sooner than this after the save
-- ARGV[2]  interval (ms): two renders of one user are scheduled at least this far apart
-- ARGV[3]  longest delay (ms): no render is scheduled further ahead than this
-- ARGV[4]  now (ms), or 0 to use the Redis server's clock (TIME)
-- ARGV[5]  hold (ms): a render due this long ago and still not started is presumed lost
-- Returns  the delay (ms) of the render to send, or -1 when one already scheduled will draw this save

local now = tonumber(ARGV[4])
if now == 0 then
  local clock = redis.call('TIME')
  now = tonumber(clock[1]) * 1000 + math.floor(tonumber(clock[2]) / 1000)
end
local debounce, interval, longest, hold = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[5])
-- Until its render starts (the task deletes the key), that render will re-read the row and draw this save
-- too: a render waiting in a busy queue absorbs every save made meanwhile instead of queueing another.
local due = tonumber(redis.call('GET', KEYS[1]))
if due ~= nil and due + hold > now then
  return -1
end

local slot = now + debounce
local next_free = tonumber(redis.call('GET', KEYS[2]))
if next_free ~= nil and next_free > slot then
  slot = next_free
end
-- Only a user with more projects in flight than `longest / interval` reaches this: their renders
-- then bunch at the horizon rather than wait past the broker's visibility timeout.
if slot - now > longest then
  slot = now + longest
end

local delay = slot - now
redis.call('SET', KEYS[1], string.format('%d', slot), 'PX', math.max(1, delay + hold))
redis.call('SET', KEYS[2], string.format('%d', slot + interval), 'PX', math.max(1, delay + interval))
return delay
