"""The Redis store's Lua scripts: every write is one script, so it is atomic.

The audit log is a hash chain (:mod:`transporter.security.audit_chain`), whose SHA-256 Redis's
Lua cannot compute. So an append is a compare-and-set on the chain's head: the client seals the
entry after the head it last saw, and the script appends it and moves the head only if that is
still the head; else it writes nothing and answers with the current head (see chain.py).
"""

from __future__ import annotations

import coredis

HEAD_MOVED = -2
"""A script's status when the audit chain's head was not the one the entry was sealed after."""
NOT_SENT = 2
""":data:`SUBMIT_SENT`'s status when the agent had more to receive (nothing written)."""
TOKEN_REVOKED = 3
""":data:`SUBMIT`'s and :data:`SUBMIT_SENT`'s status when the submitting token is revoked, or
not stored (nothing written)."""

# The audit chain's compare-and-set, used by the scripts that append an audit entry.
# k: the index in KEYS of audit:seq (then audit:head, audit); a: the index in ARGV of the head's
# seq as the client saw it (then that head's hash, the sealed entry's seq, hash and JSON).
# audit_moved returns nil when the head is still the one the entry was sealed after, else the
# reply {-2, seq, hash} with the current head. append_audit writes the stream entry first: if
# XADD fails (an ID not above the stream's last), nothing of the script is written.
APPEND_AUDIT = """
local function audit_moved(k, a)
  local seq = redis.call('GET', KEYS[k]) or '0'
  local hash = redis.call('GET', KEYS[k + 1]) or string.rep('0', 64)
  if seq == ARGV[a] and hash == ARGV[a + 1] then return nil end
  return {-2, seq, hash}
end
local function append_audit(k, a)
  redis.call('XADD', KEYS[k + 2], ARGV[a + 2] .. '-0', 'entry', ARGV[a + 4])
  redis.call('SET', KEYS[k], ARGV[a + 2])
  redis.call('SET', KEYS[k + 1], ARGV[a + 3])
end
"""

# Appends the sealed entries that follow the head's arguments at ARGV[a], ARGV[a + 1]: for each,
# its seq, hash and JSON (to the end of ARGV). Every XADD follows the one before: once the first
# is in, the others go in too, and the head moves to the last.
APPEND_AUDITS = """
local function append_audits(k, a)
  local last = a + 2
  for b = a + 2, #ARGV, 3 do
    redis.call('XADD', KEYS[k + 2], ARGV[b] .. '-0', 'entry', ARGV[b + 2])
    last = b
  end
  redis.call('SET', KEYS[k], ARGV[last])
  redis.call('SET', KEYS[k + 1], ARGV[last + 1])
end
"""

# Publishes the hint ARGV[a] (unless "") on the channel KEYS[k], after the script's writes. With
# pcall: a hint is never worth failing a write for (a user whose ACL lacks the channel, say);
# the replicas' periodic looks find what it would have told.
HINT = """
local function hint(k, a)
  if ARGV[a] ~= '' then redis.pcall('PUBLISH', KEYS[k], ARGV[a]) end
end
"""

# KEYS: notify. ARGV: a message of hints (hints.py), for a batch whose scripts published none.
NOTIFY = HINT + "hint(1, 1)\n"

# KEYS: session:A, notify. ARGV: the publisher's origin, agent A.
# Takes A's next live session number and tells the other replicas; returns the number.
CLAIM_SESSION = """
local seq = redis.call('INCR', KEYS[1])
redis.pcall('PUBLISH', KEYS[2], ARGV[1] .. '\\nclaimed ' .. ARGV[2] .. ' ' .. seq)
return seq
"""

# KEYS: audit:seq, audit:head, audit. ARGV: the audit arguments (above).
# Returns {1} when appended, {-2, seq, hash} when the head moved.
AUDIT = (
    APPEND_AUDIT
    + """
local moved = audit_moved(1, 1)
if moved then return moved end
append_audit(1, 1)
return {1}
"""
)

# The end of SUBMIT and SUBMIT_SENT (their KEYS and ARGV, below): the event stored, under the
# next seq, in every index; the hint published.
STORE_EVENT = """
local seq = redis.call('INCR', KEYS[3])
local progress = string.format('{"seq":%d,', seq) .. string.sub(ARGV[3], 2)
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
redis.call('HSET', KEYS[2], ARGV[1], progress)
redis.call('HSET', KEYS[10], ARGV[1], ARGV[5])
for i = 4, 8 do redis.call('ZADD', KEYS[i], seq, ARGV[1]) end
redis.call('ZADD', KEYS[9], ARGV[4], ARGV[1])
hint(11, 6)
return {1, progress}
"""

# The start of SUBMIT and SUBMIT_SENT: {3} when the token ARGV[7] (unless "") is revoked in the
# hash KEYS[12], or not in it.
CHECK_REVOCATION = """
if ARGV[7] ~= '' then
  local token = redis.call('HGET', KEYS[12], ARGV[7])
  if not token then return {3} end
  local revoked = cjson.decode(token)['revoked_at']
  if revoked ~= nil and revoked ~= cjson.null then return {3} end
end
"""

# KEYS: event, progress, seq, idx:all, idx:agent, idx:state, idx:agent:state, outbox, expiry,
#       event:brief, notify, tokens, audit:seq, audit:head, audit
# ARGV: id, event JSON, progress JSON without seq, expires_at, the event's brief JSON, the hint
#       to publish on notify once stored ("" for none: a batch publishes one for all), the id
#       of the token that submits it ("" for none), then the audit arguments (above)
# Returns {1, progress} when stored, {0, progress, event} when the id is taken (nothing
# written), {-2, seq, hash} when the audit chain's head moved, {3} when the token is revoked
# (nothing written).
SUBMIT = (
    APPEND_AUDIT
    + HINT
    + CHECK_REVOCATION
    + """
local existing = redis.call('HGET', KEYS[2], ARGV[1])
if existing then return {0, existing, redis.call('HGET', KEYS[1], ARGV[1])} end
local moved = audit_moved(13, 8)
if moved then return moved end
append_audit(13, 8)
"""
    + STORE_EVENT
)

# SUBMIT for an event sent at once (store/base.py Sending): stored as SUBMIT stores it (KEYS
# alike, the state indexes "assigned"; ARGV alike, the progress sent), unless the agent's outbox
# holds an event after seq ARGV[8], or the seq counter is below it (it went back, in a failover:
# an event under it may not have been read): then nothing is written. Two audit entries (the
# event's, then its delivery's), whose arguments follow ARGV[8] (chain.arguments_all).
# Returns what SUBMIT returns, or {2} when it was not stored sent (nothing written).
SUBMIT_SENT = (
    APPEND_AUDIT
    + APPEND_AUDITS
    + HINT
    + CHECK_REVOCATION
    + """
local existing = redis.call('HGET', KEYS[2], ARGV[1])
if existing then return {0, existing, redis.call('HGET', KEYS[1], ARGV[1])} end
if tonumber(redis.call('GET', KEYS[3]) or '0') < tonumber(ARGV[8]) then return {2} end
local after = redis.call('ZRANGE', KEYS[8], '(' .. ARGV[8], '+inf', 'BYSCORE', 'LIMIT', 0, 1)
if #after > 0 then return {2} end
local moved = audit_moved(13, 9)
if moved then return moved end
append_audits(13, 9)
"""
    + STORE_EVENT
)

# KEYS: progress, idx:state:old, idx:state:new, idx:agent:old, idx:agent:new, outbox, expiry,
#       notify, audit:seq, audit:head, audit
# ARGV: id, SHA-1 of its progress as read, new progress, seq, "1" when the new state is
#       terminal, the hint to publish once written ("" for none), then the audit arguments
#       (above), or nothing when there is no audit entry
# Returns {1} when written, {0} when the progress changed since it was read, {-1} when it is
# unknown, {-2, seq, hash} when the audit chain's head moved (nothing written but for {1}).
COMPARE_AND_SET = (
    APPEND_AUDIT
    + HINT
    + """
local current = redis.call('HGET', KEYS[1], ARGV[1])
if not current then return {-1} end
if redis.sha1hex(current) ~= ARGV[2] then return {0} end
local audit = #ARGV > 6
if audit then
  local moved = audit_moved(9, 7)
  if moved then return moved end
  append_audit(9, 7)
end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[3])
if KEYS[2] ~= KEYS[3] then
  redis.call('ZREM', KEYS[2], ARGV[1])
  redis.call('ZADD', KEYS[3], ARGV[4], ARGV[1])
  redis.call('ZREM', KEYS[4], ARGV[1])
  redis.call('ZADD', KEYS[5], ARGV[4], ARGV[1])
end
if ARGV[5] == '1' then
  redis.call('ZREM', KEYS[6], ARGV[1])
  redis.call('ZREM', KEYS[7], ARGV[1])
end
hint(8, 6)
return {1}
"""
)

# KEYS: an index zset, progress, event. ARGV: min, max (scores), "rev" or "fwd", count.
# Returns id, progress and event of up to count ids, in one consistent read: {id, p, e, ...}.
PAGE = """
local ids
if ARGV[3] == 'rev' then
  ids = redis.call('ZRANGE', KEYS[1], ARGV[2], ARGV[1], 'BYSCORE', 'REV', 'LIMIT', 0, ARGV[4])
else
  ids = redis.call('ZRANGE', KEYS[1], ARGV[1], ARGV[2], 'BYSCORE', 'LIMIT', 0, ARGV[4])
end
local found = {}
for _, id in ipairs(ids) do
  table.insert(found, id)
  table.insert(found, redis.call('HGET', KEYS[2], id))
  table.insert(found, redis.call('HGET', KEYS[3], id))
end
return found
"""

# KEYS: tokens, audit:seq, audit:head, audit
# ARGV: token id, its record's JSON as read ("" when there must be none), the new JSON, then the
#       audit arguments (above)
# Returns {1} when written, {0, JSON or ""} when the record is not the one read (nothing
# written), {-2, seq, hash} when the audit chain's head moved (nothing written).
PUT_TOKEN = (
    APPEND_AUDIT
    + """
local current = redis.call('HGET', KEYS[1], ARGV[1]) or ''
if current ~= ARGV[2] then return {0, current} end
local moved = audit_moved(2, 4)
if moved then return moved end
append_audit(2, 4)
redis.call('HSET', KEYS[1], ARGV[1], ARGV[3])
return {1}
"""
)

# KEYS: a hash (revoked, certificates), its seq counter, audit:seq, audit:head, audit
# ARGV: the field, its JSON without seq, then the audit arguments (above)
# Returns {1, record} when stored, {0, existing record} when the field is there already
# (nothing written), {-2, seq, hash} when the audit chain's head moved (nothing written).
PUT_ONCE = (
    APPEND_AUDIT
    + """
local existing = redis.call('HGET', KEYS[1], ARGV[1])
if existing then return {0, existing} end
local moved = audit_moved(3, 3)
if moved then return moved end
append_audit(3, 3)
local seq = redis.call('INCR', KEYS[2])
local record = string.format('{"seq":%d,', seq) .. string.sub(ARGV[2], 2)
redis.call('HSET', KEYS[1], ARGV[1], record)
return {1, record}
"""
)

# KEYS: revoked, revoked:seq. ARGV: the last seq the caller has seen.
# Returns nothing when there is no newer revocation (the usual answer), else all of them.
REVOCATIONS = """
local last = tonumber(redis.call('GET', KEYS[2]) or '0')
if last <= tonumber(ARGV[1]) then return {} end
return redis.call('HVALS', KEYS[1])
"""

# KEYS: layout, events (layout 1). ARGV: cursor, count.
# Returns {layout} when the layout is set, else HSCAN's reply {cursor, {id, record, ...}}.
MIGRATION_SCAN = """
local layout = redis.call('GET', KEYS[1])
if layout then return {layout} end
if redis.call('TYPE', KEYS[2]).ok ~= 'hash' then return {'0', {}} end
return redis.call('HSCAN', KEYS[2], ARGV[1], 'COUNT', ARGV[2])
"""

# KEYS: events (layout 1), event, progress.
# ARGV: for each record: id, SHA-1 of the record as read, event JSON, progress JSON.
# Moves each record that is still as it was read; returns how many it moved.
MIGRATION_MOVE = """
if redis.call('TYPE', KEYS[1]).ok ~= 'hash' then return 0 end
local moved = 0
for i = 1, #ARGV, 4 do
  local current = redis.call('HGET', KEYS[1], ARGV[i])
  if current and redis.sha1hex(current) == ARGV[i + 1] then
    redis.call('HSET', KEYS[2], ARGV[i], ARGV[i + 2])
    redis.call('HSET', KEYS[3], ARGV[i], ARGV[i + 3])
    redis.call('HDEL', KEYS[1], ARGV[i])
    moved = moved + 1
  end
end
return moved
"""

# KEYS: layout, events (layout 1). ARGV: the layout, the text that stands in for layout 1's hash.
# Returns 1 when the layout is set (now or before), 0 when records of layout 1 remain.
MIGRATION_FINISH = """
if redis.call('GET', KEYS[1]) then return 1 end
if redis.call('TYPE', KEYS[2]).ok == 'hash' then return 0 end
redis.call('SET', KEYS[2], ARGV[2])
redis.call('SET', KEYS[1], ARGV[1])
return 1
"""


class Scripts:
    """The scripts, registered with one client (coredis loads each on its first use)."""

    def __init__(self, client: coredis.Redis[str]) -> None:
        self.audit = client.register_script(AUDIT)
        self.submit = client.register_script(SUBMIT)
        self.submit_sent = client.register_script(SUBMIT_SENT)
        self.compare_and_set = client.register_script(COMPARE_AND_SET)
        self.page = client.register_script(PAGE)
        self.put_token = client.register_script(PUT_TOKEN)
        self.put_once = client.register_script(PUT_ONCE)
        self.revocations = client.register_script(REVOCATIONS)
        self.migration_scan = client.register_script(MIGRATION_SCAN)
        self.migration_move = client.register_script(MIGRATION_MOVE)
        self.migration_finish = client.register_script(MIGRATION_FINISH)
        self.notify = client.register_script(NOTIFY)
        self.claim_session = client.register_script(CLAIM_SESSION)
