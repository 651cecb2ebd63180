"""The Redis store's Lua scripts for rollouts: each write one script, so it is atomic.

A rollout's spec is written once, by the create; a save writes the rest (its part's JSON), with
its ``seq`` put first by the script (the store's, never the caller's), and its version kept
beside it for the save's compare-and-set. Audit entries
join the chain as in :mod:`.scripts` (a compare-and-set on the chain's head).
"""

from __future__ import annotations

import coredis

from transporter.store.redis.scripts import APPEND_AUDIT, APPEND_AUDITS

# KEYS: rollout, rollout:version, rollout:state, rollout:seq, idx:all, idx:kind:K, idx:state:S,
#       idx:kind:K:state:S, open, rollout:spec, audit:seq, audit:head, audit
# ARGV: id, its part's JSON without seq (version 1 in it), its state, "1" when it is open, its
#       spec's JSON, then the audit arguments (scripts.py)
# Returns {1, seq} when stored, {0, part JSON, spec JSON} when the id is taken (nothing
# written), {-2, seq, hash} when the audit chain's head moved (nothing written).
CREATE_ROLLOUT = (
    APPEND_AUDIT
    + """
local existing = redis.call('HGET', KEYS[1], ARGV[1])
if existing then return {0, existing, redis.call('HGET', KEYS[10], ARGV[1])} end
local moved = audit_moved(11, 6)
if moved then return moved end
append_audit(11, 6)
local seq = redis.call('INCR', KEYS[4])
local record = string.format('{"seq":%d,', seq) .. string.sub(ARGV[2], 2)
redis.call('HSET', KEYS[1], ARGV[1], record)
redis.call('HSET', KEYS[10], ARGV[1], ARGV[5])
redis.call('HSET', KEYS[2], ARGV[1], '1')
redis.call('HSET', KEYS[3], ARGV[1], ARGV[3])
for i = 5, 8 do redis.call('ZADD', KEYS[i], seq, ARGV[1]) end
if ARGV[4] == '1' then redis.call('ZADD', KEYS[9], seq, ARGV[1]) end
return {1, seq}
"""
)

# KEYS: rollout, rollout:version, rollout:state, open, idx:all, then idx:state:S for each of the
#       n states, idx:kind:K:state:S for each, idx:kind:K, then (with audit entries) audit:seq,
#       audit:head, audit
# ARGV: id, the version it was read at, its new part's JSON without seq (the next version in
#       it), its new state, "1" when it is open, n, the n states' names (in the order of KEYS),
#       then (with audit entries) the head they were sealed after (seq, hash) and seq, hash and
#       JSON of each
# Returns {1, seq} when written, {0} when the stored version is another, {-1} when the rollout is
# unknown, {-3} when it is not of kind K, {-2, seq, hash} when the audit chain's head moved
# (nothing written but for {1}). The spec, written once by the create, is never written here.
SAVE_ROLLOUT = (
    APPEND_AUDIT
    + APPEND_AUDITS
    + """
local n = tonumber(ARGV[6])
local current = redis.call('HGET', KEYS[2], ARGV[1])
if not current then return {-1} end
if not redis.call('ZSCORE', KEYS[6 + 2 * n], ARGV[1]) then return {-3} end
if current ~= ARGV[2] then return {0} end
local k, a = 7 + 2 * n, 7 + n
if #ARGV > a then
  local moved = audit_moved(k, a)
  if moved then return moved end
  append_audits(k, a)
end
local seq = tonumber(redis.call('ZSCORE', KEYS[5], ARGV[1]))
local record = string.format('{"seq":%d,', seq) .. string.sub(ARGV[3], 2)
redis.call('HSET', KEYS[1], ARGV[1], record)
redis.call('HSET', KEYS[2], ARGV[1], tostring(tonumber(current) + 1))
local old = redis.call('HGET', KEYS[3], ARGV[1])
if old ~= ARGV[4] then
  for i = 1, n do
    if ARGV[6 + i] == old then
      redis.call('ZREM', KEYS[5 + i], ARGV[1])
      redis.call('ZREM', KEYS[5 + n + i], ARGV[1])
    elseif ARGV[6 + i] == ARGV[4] then
      redis.call('ZADD', KEYS[5 + i], seq, ARGV[1])
      redis.call('ZADD', KEYS[5 + n + i], seq, ARGV[1])
    end
  end
  redis.call('HSET', KEYS[3], ARGV[1], ARGV[4])
end
if ARGV[5] == '1' then
  redis.call('ZADD', KEYS[4], seq, ARGV[1])
else
  redis.call('ZREM', KEYS[4], ARGV[1])
end
return {1, seq}
"""
)

# KEYS: an index zset, rollout. ARGV: max (score), count.
# Returns id and JSON of up to count rollouts, newest first, in one consistent read.
ROLLOUT_PAGE = """
local ids = redis.call('ZRANGE', KEYS[1], ARGV[1], '-inf', 'BYSCORE', 'REV', 'LIMIT', 0, ARGV[2])
local found = {}
for _, id in ipairs(ids) do
  table.insert(found, id)
  table.insert(found, redis.call('HGET', KEYS[2], id))
end
return found
"""


class RolloutScripts:
    """The scripts, registered with one client (coredis loads each on its first use)."""

    def __init__(self, client: coredis.Redis[str]) -> None:
        self.create = client.register_script(CREATE_ROLLOUT)
        self.save = client.register_script(SAVE_ROLLOUT)
        self.page = client.register_script(ROLLOUT_PAGE)
