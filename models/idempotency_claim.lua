-- Claim an idempotency key, atomically.
-- KEYS[1]: the kept response; KEYS[2]: the lock of a running first request.
-- ARGV[1]: this request's lock value (a token and its fingerprint); ARGV[2]: the lock's TTL in ms.
-- Returns {"kept", <response>}, {"claimed", ""} or {"running", <the running request's lock value>}.
local kept = redis.call('GET', KEYS[1])
if kept then
  return {'kept', kept}
end
if redis.call('SET', KEYS[2], ARGV[1], 'NX', 'PX', ARGV[2]) then
  return {'claimed', ''}
end
return {'running', redis.call('GET', KEYS[2])}
