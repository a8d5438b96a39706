// Package redislimit keeps the verifier's rate limits in Redis, so that
// every server sharing one Redis counts against the same limits and the
// counts survive a restart of every server.
//
// The semantics are those of verify.Limiter: fixed windows per key, a
// window starting at its first event and lasting the limit's Rate.Per; a
// Take counts against every limit or none; N <= 0 is unlimited. A Take is
// one Lua script, run atomically by Redis, so concurrent Takes from many
// servers never overspend. Windows are kept by Redis's own clock (PEXPIRE),
// so servers whose clocks disagree still agree on the windows.
//
// A limiter's counters live at <prefix><names>/<limit>:<key>, where
// <names> is its limits' names joined by "+": limiters over different
// lists of limits never share a counter, and a limiter over the same list
// on another server, or after a restart, shares all of them.
//
// When Redis cannot be reached, a Take fails closed: it refuses, within
// Timeout, with the wait RetryAfter and the limit name Unavailable.
package redislimit

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"verifier/verify"
)

const (
	// Unavailable is the limit a Take refuses with when Redis cannot be
	// reached.
	Unavailable = "store_unavailable"
	// RetryAfter is the wait a Take refuses with when Redis cannot be
	// reached.
	RetryAfter = 5 * time.Second
	// Timeout bounds every Take, Give and Wait, however the client is
	// configured.
	Timeout = 500 * time.Millisecond
	// fullTimeout bounds a Full, which may take several SCANs.
	fullTimeout = 2 * time.Second
)

// NewClient returns a client for the Redis at addr (host:port) with
// timeouts short enough for a Take to fail closed within Timeout.
func NewClient(addr string) *redis.Client {
	return redis.NewClient(&redis.Options{
		Addr:                  addr,
		DialTimeout:           Timeout,
		ReadTimeout:           Timeout,
		WriteTimeout:          Timeout,
		PoolTimeout:           Timeout,
		MaxRetries:            1,
		DialerRetries:         1,
		ContextTimeoutEnabled: true,
	})
}

// New returns a verify.Deps.Limiters that keeps every limiter's counts in
// the Redis of rdb, under keys that begin with prefix.
func New(rdb *redis.Client, prefix string) func(limits ...verify.Limit) verify.RateLimiter {
	return func(limits ...verify.Limit) verify.RateLimiter { return NewLimiter(rdb, prefix, limits...) }
}

// Limiter is a verify.RateLimiter kept in Redis. It is safe for
// concurrent use, and any number of them, in any number of processes, may
// count the same limits.
type Limiter struct {
	rdb    *redis.Client
	base   string // prefix and namespace: every key of this limiter begins with it
	limits []verify.Limit
}

var _ verify.RateLimiter = (*Limiter)(nil)

// NewLimiter returns a limiter over limits, whose names must be unique
// and hold no "+" or "/".
func NewLimiter(rdb *redis.Client, prefix string, limits ...verify.Limit) *Limiter {
	names := make([]string, len(limits))
	seen := map[string]bool{}
	for i, lim := range limits {
		if seen[lim.Name] || strings.ContainsAny(lim.Name, "+/") {
			panic(fmt.Sprintf("redislimit: limit name %q repeated or holding + or /", lim.Name))
		}
		seen[lim.Name] = true
		names[i] = lim.Name
	}
	return &Limiter{rdb: rdb, base: prefix + strings.Join(names, "+") + "/", limits: limits}
}

// counted are the limits that count: N > 0 over a window.
func (l *Limiter) counted() []verify.Limit {
	var c []verify.Limit
	for _, lim := range l.limits {
		if lim.Rate.N > 0 && lim.Rate.Per > 0 {
			c = append(c, lim)
		}
	}
	return c
}

func (l *Limiter) key(lim verify.Limit, s verify.Subject) string {
	return l.base + lim.Name + ":" + lim.Key(s)
}

// windowMs is a window in whole milliseconds, at least one.
func windowMs(per time.Duration) int64 {
	return max(1, int64((per+time.Millisecond-1)/time.Millisecond))
}

// takeScript counts one event against every key or none. KEYS[i] is the
// counter of limit i; ARGV[2i-1] its cap N, ARGV[2i] its window in ms.
// A full counter refuses with its PTTL; the longest refuses. Otherwise
// every counter is incremented, and one that has no expiry (it is new)
// gets its window: a window starts at its first event, by Redis's clock.
// Returns {1, 0, 0} when taken, {0, wait ms, index of the limit} when not.
var takeScript = redis.NewScript(`
local longest, which = 0, 0
for i = 1, #KEYS do
  local n = tonumber(ARGV[2*i-1])
  local count = tonumber(redis.call('GET', KEYS[i]) or '0')
  if count >= n then
    local ttl = redis.call('PTTL', KEYS[i])
    if ttl < 0 then
      redis.call('PEXPIRE', KEYS[i], ARGV[2*i])
      ttl = tonumber(ARGV[2*i])
    end
    if ttl < 1 then ttl = 1 end
    if ttl > longest then longest, which = ttl, i end
  end
end
if which > 0 then return {0, longest, which} end
for i = 1, #KEYS do
  redis.call('INCR', KEYS[i])
  if redis.call('PTTL', KEYS[i]) < 0 then
    redis.call('PEXPIRE', KEYS[i], ARGV[2*i])
  end
end
return {1, 0, 0}
`)

// giveScript takes one event back from every key that holds one, leaving
// its window as it is.
var giveScript = redis.NewScript(`
for i = 1, #KEYS do
  local count = tonumber(redis.call('GET', KEYS[i]) or '0')
  if count > 0 then redis.call('DECR', KEYS[i]) end
end
return 0
`)

// bounded runs f with a context that ends after timeout and returns by
// then even if the client does not heed the context: f's results must be
// read only when bounded returns nil.
func bounded(timeout time.Duration, f func(ctx context.Context) error) error {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- f(ctx) }()
	select {
	case err := <-done:
		return err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Take counts one event for s against every limit, or, if any is full,
// counts nothing and returns how long to wait and the name of the limit
// that waits longest. now is not used: Redis keeps the windows. When Redis
// cannot be reached it refuses with RetryAfter and Unavailable.
func (l *Limiter) Take(s verify.Subject, now time.Time) (wait time.Duration, limit string, ok bool) {
	lims := l.counted()
	if len(lims) == 0 {
		return 0, "", true
	}
	keys := make([]string, len(lims))
	args := make([]any, 0, 2*len(lims))
	for i, lim := range lims {
		keys[i] = l.key(lim, s)
		args = append(args, lim.Rate.N, windowMs(lim.Rate.Per))
	}
	var res []int64
	err := bounded(Timeout, func(ctx context.Context) error {
		var err error
		res, err = takeScript.Run(ctx, l.rdb, keys, args...).Int64Slice()
		return err
	})
	if err != nil || len(res) != 3 || (res[0] == 0 && (res[2] < 1 || int(res[2]) > len(lims))) {
		return RetryAfter, Unavailable, false
	}
	if res[0] == 1 {
		return 0, "", true
	}
	return time.Duration(res[1]) * time.Millisecond, lims[res[2]-1].Name, false
}

// Give undoes a Take whose event did not happen after all. When Redis
// cannot be reached the event stays counted.
func (l *Limiter) Give(s verify.Subject) {
	lims := l.counted()
	if len(lims) == 0 {
		return
	}
	keys := make([]string, len(lims))
	for i, lim := range lims {
		keys[i] = l.key(lim, s)
	}
	_ = bounded(Timeout, func(ctx context.Context) error {
		return giveScript.Run(ctx, l.rdb, keys).Err()
	})
}

// Wait reports how long s must wait and the limit that waits longest,
// counting nothing. When Redis cannot be reached it reports RetryAfter
// and Unavailable.
func (l *Limiter) Wait(s verify.Subject, now time.Time) (time.Duration, string) {
	lims := l.counted()
	if len(lims) == 0 {
		return 0, ""
	}
	gets := make([]*redis.StringCmd, len(lims))
	ttls := make([]*redis.DurationCmd, len(lims))
	err := bounded(Timeout, func(ctx context.Context) error {
		cmds, err := l.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
			for i, lim := range lims {
				gets[i] = p.Get(ctx, l.key(lim, s))
				ttls[i] = p.PTTL(ctx, l.key(lim, s))
			}
			return nil
		})
		if err == nil || len(cmds) == 0 {
			return err
		}
		for _, c := range cmds {
			if err := c.Err(); err != nil && !errors.Is(err, redis.Nil) {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return RetryAfter, Unavailable
	}
	var wait time.Duration
	var limit string
	for i, lim := range lims {
		if w := fullFor(lim, gets[i], ttls[i]); w > wait {
			wait, limit = w, lim.Name
		}
	}
	return wait, limit
}

// fullFor is how long a counter read as get and ttl holds lim full; 0 if
// it does not.
func fullFor(lim verify.Limit, get *redis.StringCmd, ttl *redis.DurationCmd) time.Duration {
	count, err := get.Int()
	if err != nil || count < lim.Rate.N {
		return 0
	}
	switch d := ttl.Val(); {
	case ttl.Err() != nil || d == -2: // gone since
		return 0
	case d < 0: // no expiry, which Take would give it
		return lim.Rate.Per
	default:
		return max(d, time.Millisecond)
	}
}

// Full lists up to max keys that some limit holds full, each Until now
// plus what is left of its window. It scans this limiter's keys in Redis;
// when Redis cannot be reached it lists what it found by then.
func (l *Limiter) Full(now time.Time, most int) []verify.Hit {
	var hits []verify.Hit
	_ = bounded(fullTimeout, func(ctx context.Context) error {
		var found []verify.Hit
		var cursor uint64
		for len(found) != most {
			keys, next, err := l.rdb.Scan(ctx, cursor, globEscape(l.base)+"*", 256).Result()
			if err != nil {
				return err
			}
			found = append(found, l.fullAmong(ctx, keys, now, most-len(found))...)
			if cursor = next; cursor == 0 {
				break
			}
		}
		hits = found
		return nil
	})
	return hits
}

// fullAmong lists up to most of keys that their limit holds full.
func (l *Limiter) fullAmong(ctx context.Context, keys []string, now time.Time, most int) []verify.Hit {
	type counter struct {
		lim      verify.Limit
		redisKey string // the counter
		limitKey string // what the limit counts by
		get      *redis.StringCmd
		ttl      *redis.DurationCmd
	}
	var cs []counter
	for _, k := range keys {
		if lim, key, ok := l.parse(k); ok {
			cs = append(cs, counter{lim: lim, redisKey: k, limitKey: key})
		}
	}
	if len(cs) == 0 {
		return nil
	}
	_, _ = l.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		for i := range cs {
			cs[i].get = p.Get(ctx, cs[i].redisKey)
			cs[i].ttl = p.PTTL(ctx, cs[i].redisKey)
		}
		return nil
	})
	var hits []verify.Hit
	for _, c := range cs {
		if len(hits) == most {
			break
		}
		if w := fullFor(c.lim, c.get, c.ttl); w > 0 {
			hits = append(hits, verify.Hit{Limit: c.lim.Name, Key: c.limitKey, Until: now.Add(w)})
		}
	}
	return hits
}

// parse splits a Redis key of this limiter into its counting limit and
// the limit's key.
func (l *Limiter) parse(k string) (lim verify.Limit, key string, ok bool) {
	rest, mine := strings.CutPrefix(k, l.base)
	if !mine {
		return lim, "", false
	}
	for _, c := range l.counted() {
		// The longest name that fits: a name may hold ":".
		if after, fits := strings.CutPrefix(rest, c.Name+":"); fits && (!ok || len(c.Name) > len(lim.Name)) {
			lim, key, ok = c, after, true
		}
	}
	return lim, key, ok
}

// globEscape quotes what SCAN MATCH would read as a pattern.
func globEscape(s string) string {
	var b strings.Builder
	for _, r := range s {
		if strings.ContainsRune(`*?[]\`, r) {
			b.WriteByte('\\')
		}
		b.WriteRune(r)
	}
	return b.String()
}
