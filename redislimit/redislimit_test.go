package redislimit

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"net"
	"os"
	"sort"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"verifier/verify"
)

// testRedis is a client for the Redis at VERIFIER_TEST_REDIS, and a prefix
// of this test's own: other tests share that Redis, so only keys under
// the prefix are touched, and they are deleted at the end.
func testRedis(t *testing.T) (*redis.Client, string) {
	t.Helper()
	addr := os.Getenv("VERIFIER_TEST_REDIS")
	if addr == "" {
		t.Skip("no Redis at VERIFIER_TEST_REDIS: skipping (set it to host:port to run)")
	}
	rdb := NewClient(addr)
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	if err := rdb.Ping(ctx).Err(); err != nil {
		rdb.Close()
		t.Skipf("no Redis at VERIFIER_TEST_REDIS: skipping (%s: %v)", addr, err)
	}
	var b [8]byte
	rand.Read(b[:])
	prefix := "verifier-test:" + hex.EncodeToString(b[:]) + ":"
	t.Cleanup(func() {
		defer rdb.Close()
		for _, k := range keysUnder(t, rdb, prefix) {
			rdb.Del(context.Background(), k)
		}
	})
	return rdb, prefix
}

func keysUnder(t *testing.T, rdb *redis.Client, prefix string) []string {
	t.Helper()
	var keys []string
	iter := rdb.Scan(context.Background(), 0, globEscape(prefix)+"*", 500).Iterator()
	for iter.Next(context.Background()) {
		keys = append(keys, iter.Val())
	}
	if err := iter.Err(); err != nil {
		t.Errorf("scan %s*: %v", prefix, err)
	}
	return keys
}

var (
	alice = verify.Subject{Phone: "+14155552671", Conn: "c1", Client: "192.0.2.1"}
	bob   = verify.Subject{Phone: "+14155552672", Conn: "c2", Client: "192.0.2.2"}
)

func byClient(name string, n int, per time.Duration) verify.Limit {
	return verify.Limit{Name: name, Rate: verify.Rate{N: n, Per: per}, Key: verify.ByClient}
}

func mustTake(t *testing.T, l verify.RateLimiter, s verify.Subject) {
	t.Helper()
	if wait, limit, ok := l.Take(s, time.Now()); !ok {
		t.Fatalf("take %+v refused: wait %v, limit %q", s, wait, limit)
	}
}

func wantRefused(t *testing.T, l verify.RateLimiter, s verify.Subject, name string, per time.Duration) time.Duration {
	t.Helper()
	wait, limit, ok := l.Take(s, time.Now())
	if ok {
		t.Fatalf("take %+v granted, want refused by %q", s, name)
	}
	if limit != name || wait <= 0 || wait > per || wait < per-2*time.Second && per > 2*time.Second {
		t.Fatalf("take %+v refused with wait %v by %q, want up to %v by %q", s, wait, limit, per, name)
	}
	return wait
}

func TestNPerWindowThenRefusedWithTheWaitAndName(t *testing.T) {
	rdb, prefix := testRedis(t)
	l := New(rdb, prefix)(byClient("client", 3, time.Hour))
	for range 3 {
		mustTake(t, l, alice)
	}
	wantRefused(t, l, alice, "client", time.Hour)
	if wait, limit := l.Wait(alice, time.Now()); limit != "client" || wait <= time.Hour-2*time.Second || wait > time.Hour {
		t.Fatalf("wait = %v %q, want about an hour of client", wait, limit)
	}
	mustTake(t, l, bob) // another key has its own window
	if wait, limit := l.Wait(bob, time.Now()); wait != 0 || limit != "" {
		t.Fatalf("bob's wait = %v %q, want none", wait, limit)
	}
}

func TestTakeCountsAgainstEveryLimitOrNone(t *testing.T) {
	rdb, prefix := testRedis(t)
	l := New(rdb, prefix)(
		byClient("client", 3, time.Hour),
		verify.Limit{Name: "connection", Rate: verify.Rate{N: 1, Per: time.Minute}, Key: verify.ByConn})
	mustTake(t, l, alice)
	// The connection is full: the refusal must not count against client.
	for range 5 {
		wantRefused(t, l, alice, "connection", time.Minute)
	}
	other := alice
	for _, conn := range []string{"c3", "c4"} {
		other.Conn = conn
		mustTake(t, l, other)
	}
	other.Conn = "c5"
	wantRefused(t, l, other, "client", time.Hour)
	// Both full: the longest wait refuses.
	wantRefused(t, l, alice, "client", time.Hour)
}

func TestGiveUndoesATakeAndNeverGoesBelowZero(t *testing.T) {
	rdb, prefix := testRedis(t)
	l := New(rdb, prefix)(byClient("client", 2, time.Hour))
	l.Give(alice) // nothing taken: nothing to give back
	l.Give(alice)
	mustTake(t, l, alice)
	mustTake(t, l, alice)
	wantRefused(t, l, alice, "client", time.Hour)
	l.Give(alice)
	mustTake(t, l, alice)
	wantRefused(t, l, alice, "client", time.Hour)
}

func TestUnlimitedCountsNothing(t *testing.T) {
	rdb, prefix := testRedis(t)
	l := New(rdb, prefix)(byClient("client", 0, time.Hour), byClient("zero_window", 5, 0))
	for range 50 {
		mustTake(t, l, alice)
	}
	l.Give(alice)
	if wait, limit := l.Wait(alice, time.Now()); wait != 0 || limit != "" {
		t.Fatalf("wait = %v %q, want none", wait, limit)
	}
	if keys := keysUnder(t, rdb, prefix); len(keys) != 0 {
		t.Fatalf("unlimited limits stored %v", keys)
	}
	// Beside a limit that counts, an unlimited one does not refuse.
	l = New(rdb, prefix)(byClient("client", 0, time.Hour), byClient("everyone", 2, time.Hour))
	mustTake(t, l, alice)
	mustTake(t, l, alice)
	wantRefused(t, l, alice, "everyone", time.Hour)
}

func TestTheWindowEnds(t *testing.T) {
	rdb, prefix := testRedis(t)
	const per = 300 * time.Millisecond
	l := New(rdb, prefix)(byClient("client", 2, per))
	mustTake(t, l, alice)
	mustTake(t, l, alice)
	wait := wantRefused(t, l, alice, "client", per)
	time.Sleep(wait + 50*time.Millisecond)
	mustTake(t, l, alice) // a new window, starting now
	mustTake(t, l, alice)
	wantRefused(t, l, alice, "client", per)
}

func TestThreeServersRacingNeverOverspend(t *testing.T) {
	rdb, prefix := testRedis(t)
	var servers []verify.RateLimiter
	for range 3 {
		c := NewClient(rdb.Options().Addr)
		t.Cleanup(func() { c.Close() })
		servers = append(servers, New(c, prefix)(
			verify.Limit{Name: "hour", Rate: verify.Rate{N: 10, Per: time.Hour}, Key: verify.Everyone},
			byClient("client", 1000, time.Hour)))
	}
	var granted, unavailable atomic.Int64
	var wg sync.WaitGroup
	for g := range 50 {
		wg.Go(func() {
			for range 4 { // 50 x 4 = 200 Takes
				_, limit, ok := servers[g%3].Take(alice, time.Now())
				if ok {
					granted.Add(1)
				} else if limit == Unavailable {
					unavailable.Add(1)
				}
			}
		})
	}
	wg.Wait()
	if granted.Load() != 10 || unavailable.Load() != 0 {
		t.Fatalf("granted %d of 200 Takes on a cap of 10 (%d refused as unavailable), want exactly 10",
			granted.Load(), unavailable.Load())
	}
	for _, s := range servers {
		wantRefused(t, s, alice, "hour", time.Hour)
	}
}

func TestLimitsSurviveARestart(t *testing.T) {
	rdb, prefix := testRedis(t)
	limits := []verify.Limit{byClient("client", 3, time.Hour)}
	before := NewClient(rdb.Options().Addr)
	l := New(before, prefix)(limits...)
	for range 3 {
		mustTake(t, l, alice)
	}
	before.Close()
	// Every server restarts: new clients, new limiters.
	after := NewClient(rdb.Options().Addr)
	defer after.Close()
	l = New(after, prefix)(limits...)
	wantRefused(t, l, alice, "client", time.Hour)
	mustTake(t, l, bob)
}

func TestLimitersOverOtherLimitsDoNotShareCounters(t *testing.T) {
	rdb, prefix := testRedis(t)
	// The client's window is the longer, so a refusal names it: equal
	// windows would tie to within the millisecond between two PEXPIREs.
	lims := verify.Limits{PerConnection: verify.Rate{N: 1, Per: time.Hour}, PerClient: verify.Rate{N: 1, Per: 2 * time.Hour}}
	factory := New(rdb, prefix)
	sends, expecting := factory(lims.Table()...), factory(lims.PerKey()...)
	mustTake(t, sends, alice)
	mustTake(t, expecting, alice) // the same "connection" and "client" names, other counters
	wantRefused(t, sends, alice, "client", 2*time.Hour)
	wantRefused(t, expecting, alice, "client", 2*time.Hour)
	if hits := sends.Full(time.Now(), 100); len(hits) != 2 {
		t.Fatalf("the send limiter lists %+v, want its own 2 full keys", hits)
	}
}

func TestRedisDownRefusesPromptly(t *testing.T) {
	redis.SetLogger(quiet{}) // the pool's dial errors are expected here
	limits := []verify.Limit{byClient("client", 3, time.Hour)}
	// Nothing listens on port 1; a listener that never answers stands for
	// a Redis that hangs, against a client with go-redis's own timeouts.
	hung, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer hung.Close()
	go func() {
		for {
			c, err := hung.Accept()
			if err != nil {
				return
			}
			defer c.Close()
		}
	}()
	for name, rdb := range map[string]*redis.Client{
		"refused":                   NewClient("127.0.0.1:1"),
		"refused, default client":   redis.NewClient(&redis.Options{Addr: "127.0.0.1:1"}),
		"hanging":                   NewClient(hung.Addr().String()),
		"hanging, default timeouts": redis.NewClient(&redis.Options{Addr: hung.Addr().String()}),
	} {
		t.Run(name, func(t *testing.T) {
			defer rdb.Close()
			l := New(rdb, "verifier-test:down:")(limits...)
			for range 2 {
				start := time.Now()
				wait, limit, ok := l.Take(alice, start)
				if took := time.Since(start); ok || limit != Unavailable || wait < time.Second || wait > 10*time.Second || took > time.Second {
					t.Fatalf("take = %v %q %v after %v, want refused as %q within 1s", wait, limit, ok, took, Unavailable)
				}
			}
			start := time.Now()
			if wait, limit := l.Wait(alice, start); limit != Unavailable || wait <= 0 {
				t.Fatalf("wait = %v %q, want %q", wait, limit, Unavailable)
			}
			l.Give(alice)
			if hits := l.Full(start, 10); len(hits) != 0 {
				t.Fatalf("full = %+v", hits)
			}
			if took := time.Since(start); took > 5*time.Second {
				t.Fatalf("wait, give and full took %v", took)
			}
		})
	}
}

func TestFullListsTheFullKeys(t *testing.T) {
	rdb, prefix := testRedis(t)
	l := New(rdb, prefix)(
		byClient("client", 2, time.Hour),
		verify.Limit{Name: "minute", Rate: verify.Rate{N: 5, Per: time.Minute}, Key: verify.Everyone})
	ipv6 := verify.Subject{Conn: "c9", Client: "2001:db8::1"}
	for _, s := range []verify.Subject{alice, alice, ipv6, ipv6, bob} {
		mustTake(t, l, s)
	}
	wantRefused(t, l, bob, "minute", time.Minute)
	mustTake(t, New(rdb, prefix)(byClient("client", 1, time.Hour)), bob) // full, but another limiter's
	now := time.Now()
	hits := l.Full(now, 100)
	sort.Slice(hits, func(i, j int) bool { return hits[i].Limit+hits[i].Key < hits[j].Limit+hits[j].Key })
	want := []verify.Hit{{Limit: "client", Key: alice.Client}, {Limit: "client", Key: ipv6.Client}, {Limit: "minute", Key: ""}}
	if len(hits) != len(want) {
		t.Fatalf("full = %+v, want %+v", hits, want)
	}
	for i, h := range hits {
		if h.Limit != want[i].Limit || h.Key != want[i].Key {
			t.Fatalf("full = %+v, want %+v", hits, want)
		}
		per := map[string]time.Duration{"client": time.Hour, "minute": time.Minute}[h.Limit]
		if left := h.Until.Sub(now); left <= per-2*time.Second || left > per {
			t.Fatalf("%s %q until %v from now, want about %v", h.Limit, h.Key, left, per)
		}
	}
	if hits := l.Full(now, 2); len(hits) != 2 {
		t.Fatalf("full of at most 2 = %+v", hits)
	}
	if hits := l.Full(now, 0); len(hits) != 0 {
		t.Fatalf("full of at most 0 = %+v", hits)
	}
}

type quiet struct{}

func (quiet) Printf(context.Context, string, ...any) {}
