// Package online holds the online stores that live outside the process
// (Redis) and Open, the one way every caller opens an online store from a
// URL. The interface and the embedded store are package feature's, so what
// imports features does not link a Redis client.
package online

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"slices"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/baton-ml/baton/internal/feature"
)

// Redis is the online store at scale: several baton processes can share it,
// and it survives their restarts without a replay.
//
// Each (source, key) is one sorted set, PREFIX:ev:SOURCE:KEY, scored by
// event time (unix µs, exact in a float64 until the year 2255) whose members
// are encoded events. A member starts with its Seq, so two events of equal
// time are distinct members, re-applying a logged event (a replay, or
// another process's foreign events) is a no-op, and Redis's order of equal
// scores (by member bytes) is already Seq order. PREFIX:newest:SOURCE holds
// the newest event time any process applied, which trimming is relative to.
//
// The trim script touches several keys at once, so this targets a
// standalone Redis (or one primary), not Redis Cluster.
type Redis struct {
	c      *redis.Client
	prefix string
	trim   *redis.Script
}

// redisExpirySlack is added to a source's retention for the TTL of its
// sorted sets. The TTL only collects keys that stopped receiving events:
// trimming on write is what bounds the window, and a quiet key's last
// window should outlive its retention a little, as Memory keeps it.
const redisExpirySlack = time.Hour

// trimLua raises PREFIX:newest:SOURCE (KEYS[1]) to ARGV[1] and trims the
// touched sorted sets (KEYS[2:]) to the retention (ARGV[2], µs) behind it,
// refreshing their TTL (ARGV[3], ms). Numbers cross as decimal strings:
// Lua's default number formatting keeps 14 digits and µs times have 16.
const trimLua = `
local newest = tonumber(ARGV[1])
local cur = redis.call('GET', KEYS[1])
if cur and tonumber(cur) >= newest then
	newest = tonumber(cur)
else
	redis.call('SET', KEYS[1], ARGV[1])
end
local cut = string.format('%.0f', newest - tonumber(ARGV[2]))
for i = 2, #KEYS do
	redis.call('ZREMRANGEBYSCORE', KEYS[i], '-inf', cut)
	redis.call('PEXPIRE', KEYS[i], ARGV[3])
end
return string.format('%.0f', newest)
`

// NewRedis connects to the Redis at url (redis://HOST:PORT/DB) and keeps
// its keys under prefix ("baton" when empty), so deployments can share a
// server.
func NewRedis(ctx context.Context, url, prefix string) (*Redis, error) {
	opt, err := redis.ParseURL(url)
	if err != nil {
		return nil, fmt.Errorf("online store URL %q: %w; want redis://HOST:PORT/DB", url, err)
	}
	if prefix == "" {
		prefix = "baton"
	}
	c := redis.NewClient(opt)
	if err := c.Ping(ctx).Err(); err != nil {
		c.Close()
		return nil, fmt.Errorf("the Redis online store at %s does not answer PING: %w; start Redis or fix the URL", opt.Addr, err)
	}
	return &Redis{c: c, prefix: prefix, trim: redis.NewScript(trimLua)}, nil
}

func (r *Redis) eventsKey(source, key string) string {
	return r.prefix + ":ev:" + source + ":" + key
}

func (r *Redis) newestKey(source string) string { return r.prefix + ":newest:" + source }

// Apply implements feature.OnlineStore: one round trip per batch, the adds pipelined
// ahead of the trim script so it sees them.
func (r *Redis) Apply(ctx context.Context, source string, evs []feature.Event, retention int64) error {
	if len(evs) == 0 {
		return nil
	}
	newest := int64(math.MinInt64)
	byKey := map[string][]redis.Z{}
	keys := []string{r.newestKey(source)}
	var buf []byte
	for i := range evs {
		ev := &evs[i]
		newest = max(newest, ev.Time)
		k := r.eventsKey(source, ev.Key)
		if _, ok := byKey[k]; !ok {
			keys = append(keys, k)
		}
		buf = appendMember(buf[:0], ev)
		byKey[k] = append(byKey[k], redis.Z{Score: float64(ev.Time), Member: string(buf)})
	}
	ttl := max(retention/1000, 0) + redisExpirySlack.Milliseconds()
	args := []any{strconv.FormatInt(newest, 10), strconv.FormatInt(retention, 10), strconv.FormatInt(ttl, 10)}

	pipe := r.c.Pipeline()
	adds := make([]*redis.IntCmd, 0, len(byKey))
	for _, k := range keys[1:] {
		adds = append(adds, pipe.ZAdd(ctx, k, byKey[k]...))
	}
	trim := r.trim.EvalSha(ctx, pipe, keys, args...)
	_, _ = pipe.Exec(ctx) // errors are read per command below
	for _, a := range adds {
		if err := a.Err(); err != nil {
			return fmt.Errorf("add %d events of %s to Redis: %w", len(evs), source, err)
		}
	}
	err := trim.Err()
	if redis.HasErrorPrefix(err, "NOSCRIPT") {
		// The server lost its script cache (a restart or SCRIPT FLUSH):
		// send the source once; trimming twice is harmless.
		err = r.trim.Eval(ctx, r.c, keys, args...).Err()
	}
	if err != nil {
		return fmt.Errorf("trim the Redis online store of %s: %w", source, err)
	}
	return nil
}

// Range implements feature.OnlineStore.
func (r *Redis) Range(ctx context.Context, source, key string, from, to int64) ([]feature.Event, error) {
	ms, err := r.c.ZRangeArgs(ctx, redis.ZRangeArgs{
		Key:     r.eventsKey(source, key),
		Start:   "(" + strconv.FormatInt(from, 10),
		Stop:    strconv.FormatInt(to, 10),
		ByScore: true,
	}).Result()
	if err != nil {
		return nil, fmt.Errorf("read %s of %s from Redis: %w", key, source, err)
	}
	evs := make([]feature.Event, len(ms))
	for i, m := range ms {
		if err := decodeMember(m, &evs[i]); err != nil {
			return nil, fmt.Errorf("read %s of %s from Redis: %w; is prefix %q shared with something else?", key, source, err, r.prefix)
		}
		evs[i].Key = key
	}
	// Redis orders equal scores by member bytes, which start with the Seq;
	// sort anyway in case of older or foreign members, it is a check when
	// the order already holds.
	if !slices.IsSortedFunc(evs, cmpEvent) {
		slices.SortFunc(evs, cmpEvent)
	}
	// A Seq names one log record, so equal (Time, Seq) is one event encoded
	// twice, as when a replay re-applies it after a source's fields changed.
	return slices.CompactFunc(evs, func(a, b feature.Event) bool { return a.Time == b.Time && a.Seq == b.Seq }), nil
}

func cmpEvent(a, b feature.Event) int {
	if a.Time != b.Time {
		return cmpInt(a.Time, b.Time)
	}
	return cmpInt(a.Seq, b.Seq)
}

func cmpInt(a, b int64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// Newest returns the newest event time applied to source by any process
// sharing the store, and false when none was.
func (r *Redis) Newest(ctx context.Context, source string) (int64, bool, error) {
	s, err := r.c.Get(ctx, r.newestKey(source)).Result()
	if errors.Is(err, redis.Nil) {
		return 0, false, nil
	}
	if err != nil {
		return 0, false, fmt.Errorf("read the newest event time of %s from Redis: %w", source, err)
	}
	t, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		return 0, false, fmt.Errorf("newest event time of %s in Redis is %q, not an integer", source, s)
	}
	return t, true, nil
}

// Close implements feature.OnlineStore.
func (r *Redis) Close() error { return r.c.Close() }

// Reset implements feature.OnlineStore: it deletes the source's keys (SCAN, not KEYS,
// so a large store is not blocked).
func (r *Redis) Reset(ctx context.Context, source string) error {
	iter := r.c.Scan(ctx, 0, r.prefix+":ev:"+source+":*", 1000).Iterator()
	var batch []string
	for iter.Next(ctx) {
		batch = append(batch, iter.Val())
		if len(batch) == 1000 {
			if err := r.c.Del(ctx, batch...).Err(); err != nil {
				return err
			}
			batch = batch[:0]
		}
	}
	if err := iter.Err(); err != nil {
		return err
	}
	if len(batch) > 0 {
		if err := r.c.Del(ctx, batch...).Err(); err != nil {
			return err
		}
	}
	return r.c.Del(ctx, r.newestKey(source)).Err()
}

// memberV1 starts a member, so the layout can change without misreading
// members already stored.
const memberV1 = 1

// appendMember encodes ev as a sorted-set member: version | Seq (8 bytes,
// big-endian, so bytes order as Seqs do) | varint Time | varint Ingested |
// uvarint len(Vals) | Vals as the log encodes them. The key is the set's
// name, so it is left out.
func appendMember(b []byte, ev *feature.Event) []byte {
	b = append(b, memberV1)
	b = binary.BigEndian.AppendUint64(b, uint64(ev.Seq))
	b = binary.AppendVarint(b, ev.Time)
	b = binary.AppendVarint(b, ev.Ingested)
	b = binary.AppendUvarint(b, uint64(len(ev.Vals)))
	for _, v := range ev.Vals {
		b = feature.AppendValue(b, v)
	}
	return b
}

var errBadMember = errors.New("not an event member")

// decodeMember decodes a member made by appendMember into ev (all but Key).
func decodeMember(s string, ev *feature.Event) error {
	if len(s) < 9 || s[0] != memberV1 {
		return errBadMember
	}
	p := []byte(s)
	ev.Seq = int64(binary.BigEndian.Uint64(p[1:9]))
	off := 9
	varint := func() (int64, bool) {
		v, n := binary.Varint(p[off:])
		off += max(n, 0)
		return v, n > 0
	}
	uvarint := func() (uint64, bool) {
		v, n := binary.Uvarint(p[off:])
		off += max(n, 0)
		return v, n > 0
	}
	var ok1, ok2 bool
	ev.Time, ok1 = varint()
	ev.Ingested, ok2 = varint()
	nv, ok3 := uvarint()
	if !ok1 || !ok2 || !ok3 || nv > uint64(len(p)-off) {
		return errBadMember
	}
	ev.Vals = make([]feature.Value, nv)
	rest := p[off:]
	for i := range ev.Vals {
		v, r, ok := feature.DecodeValue(rest)
		if !ok {
			return errBadMember
		}
		ev.Vals[i], rest = v, r
	}
	off = len(p) - len(rest)
	if off != len(p) {
		return errBadMember
	}
	return nil
}
