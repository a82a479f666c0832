-- Settle a claim: keep the response (unless ARGV[2] is empty) and drop the lock, if the claim still holds.
-- KEYS[1]: the kept response; KEYS[2]: the lock. ARGV[1]: the claim's lock value; ARGV[2]: the response
-- to keep, or ''; ARGV[3]: how long to keep it, in seconds.
-- A lock that expired during a slow first request still lets it keep its response, unless another
-- request has claimed the key since: then that one's outcome is the one kept. Returns 1 when settled.
local holder = redis.call('GET', KEYS[2])
if holder and holder ~= ARGV[1] then
  return 0
end
if ARGV[2] ~= '' then
  redis.call('SET', KEYS[1], ARGV[2], 'EX', ARGV[3])
end
if holder then
  redis.call('DEL', KEYS[2])
end
return 1
