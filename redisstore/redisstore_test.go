package redisstore_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"verifier/record"
	"verifier/redisstore"
	"verifier/storetest"
	"verifier/verify"
)

// The tests share a Redis with other packages' tests: every test keeps its
// keys under a random prefix of its own and removes only those.

// env names the Redis the tests use, as host:port.
const env = "VERIFIER_TEST_REDIS"

// harness reaches the test Redis: admin reads and cleans keys behind the
// stores' backs.
type harness struct {
	addr  string
	admin *redis.Client
}

// TestRedis holds every test that needs a Redis, so that without one they
// skip with a single line.
func TestRedis(t *testing.T) {
	h := connect(t)
	t.Run("Contract", func(t *testing.T) {
		storetest.Run(t, func(t *testing.T) storetest.Store { return h.open(t, h.prefix(t), redisstore.Options{}) })
	})
	t.Run("DumpHoldsNoNumber", h.testDump)
	t.Run("TwoServersLoseNoIncrement", h.testTwoServers)
	t.Run("AnotherSecretIsRefused", h.testAnotherSecret)
	t.Run("UnreadableRecordReadsAsNew", h.testUnreadable)
	t.Run("StaleIndexEntriesAreDropped", h.testStaleIndex)
	t.Run("ForgetVerifiedBeforeKeepsToItsPrefix", h.testForgetPrefix)
	t.Run("SpentTokensExpireInRedis", h.testSpentExpire)
	t.Run("BackupIsRefused", h.testBackup)
	t.Run("OutageFailsPromptlyAndRecovers", h.testOutage)
}

func connect(t *testing.T) *harness {
	addr := os.Getenv(env)
	if addr == "" {
		t.Skip("no Redis at VERIFIER_TEST_REDIS: skipping the Redis store's tests (set it to host:port of a redis-server)")
	}
	admin := redis.NewClient(&redis.Options{Addr: addr, DialTimeout: time.Second, ReadTimeout: time.Second, MaxRetries: -1})
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if err := admin.Ping(ctx).Err(); err != nil {
		admin.Close()
		t.Skipf("no Redis at VERIFIER_TEST_REDIS: skipping the Redis store's tests (%s does not answer PING: %v)", addr, err)
	}
	t.Cleanup(func() { admin.Close() })
	return &harness{addr: addr, admin: admin}
}

func (h *harness) url() string { return "redis://" + h.addr + "/0" }

// prefix is a new key prefix for t, whose keys are removed when t ends.
func (h *harness) prefix(t *testing.T) string {
	b := make([]byte, 8)
	rand.Read(b)
	prefix := "verifiertest:" + hex.EncodeToString(b) + ":"
	t.Cleanup(func() { h.clean(t, prefix) })
	return prefix
}

// clean removes the keys under prefix, and only those.
func (h *harness) clean(t *testing.T, prefix string) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	keys, err := h.keys(ctx, prefix)
	for len(keys) > 0 && err == nil {
		n := min(len(keys), 500)
		err = h.admin.Unlink(ctx, keys[:n]...).Err()
		keys = keys[n:]
	}
	if err != nil {
		t.Errorf("removing the test's keys under %s: %v", prefix, err)
	}
}

// keys lists the keys under prefix.
func (h *harness) keys(ctx context.Context, prefix string) ([]string, error) {
	var all []string
	iter := h.admin.Scan(ctx, 0, redisstore.EscapeGlob(prefix)+"*", 1000).Iterator()
	for iter.Next(ctx) {
		all = append(all, iter.Val())
	}
	return all, iter.Err()
}

// open opens a store under prefix, closed when t ends.
func (h *harness) open(t *testing.T, prefix string, opts redisstore.Options) *redisstore.Store {
	t.Helper()
	opts.Prefix = prefix
	s, err := redisstore.Open(t.Context(), h.url(), opts)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return s
}

func fixedSecret(b byte) func(*redisstore.Store) ([]byte, error) {
	return func(*redisstore.Store) ([]byte, error) { return bytes.Repeat([]byte{b}, 32), nil }
}

func put(t *testing.T, s verify.Store, phone string, rec verify.Record) {
	t.Helper()
	if err := s.Update(t.Context(), phone, func(r *verify.Record) error { *r = rec; return nil }); err != nil {
		t.Fatalf("Update %s: %v", phone, err)
	}
}

// testDump stores what flows leave behind, verified numbers and pending
// codes, and checks that no key or value under the prefix holds a number.
func (h *harness) testDump(t *testing.T) {
	prefix := h.prefix(t)
	s := h.open(t, prefix, redisstore.Options{Secret: func(s *redisstore.Store) ([]byte, error) {
		return s.Secret("token-key", func() ([]byte, error) { return bytes.Repeat([]byte("k"), 32), nil })
	}})
	now := time.Now()
	var phones []string
	for i := range 30 {
		phone := fmt.Sprintf("+1628555%04d", i)
		if i%3 == 0 {
			phone = fmt.Sprintf("+4477009%05d", i)
		}
		phones = append(phones, phone)
		var rec verify.Record
		switch i % 4 {
		case 0: // verified
			rec = verify.Record{VerifiedAt: now.Add(-time.Hour)}
		case 1: // a code pending
			rec = verify.Record{Pending: &verify.Pending{Secret: "JBSWY3DPEHPK3PXP", Digits: 6, SentAt: now,
				ExpiresAt: now.Add(10 * time.Minute), Conn: "c" + fmt.Sprint(i), Channel: "sms", Link: "nonce", Site: "shop.example"},
				Sends: verify.Window{Until: now.Add(time.Hour), Count: 1}}
		case 2: // verified again, counting
			rec = verify.Record{VerifiedAt: now, Sends: verify.Window{Until: now.Add(time.Hour), Count: 2},
				Wrong: verify.Window{Until: now.Add(time.Hour), Count: 1}}
		case 3: // an app, and an expired code for the sweeper
			rec = verify.Record{VerifiedAt: now, App: &verify.App{Secret: []byte("sealed-elsewhere"), Enrolled: true, LastStep: 7},
				Pending: &verify.Pending{Secret: "x", Digits: 6, SentAt: now.Add(-time.Hour), ExpiresAt: now.Add(-time.Minute)}}
		}
		put(t, s, phone, rec)
	}
	if _, err := s.Spend(t.Context(), "00112233445566778899aabbccddeeff", now.Add(5*time.Minute)); err != nil {
		t.Fatal(err)
	}
	due, err := s.Expired(t.Context(), now, 100)
	if err != nil || len(due) == 0 {
		t.Fatalf("Expired = %v, %v: the sweeper must still name the numbers", due, err)
	}

	dump, kinds := h.dump(t, prefix)
	if kinds["n:"] != len(phones) || kinds["exp"] != 1 || kinds["sealed"] != 1 || kinds["meta"] != 1 || kinds["spent:"] != 1 {
		t.Fatalf("the prefix holds %v: the dump would prove nothing", kinds)
	}
	storetest.NoNumberIn(t, dump, phones...)
}

// dump is every key under prefix with its value, read as data and as
// DUMP's serialization, and how many keys of each kind there are.
func (h *harness) dump(t *testing.T, prefix string) ([]byte, map[string]int) {
	ctx := t.Context()
	keys, err := h.keys(ctx, prefix)
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	kinds := map[string]int{}
	for _, k := range keys {
		rest := strings.TrimPrefix(k, prefix)
		kind := rest
		if i := strings.Index(rest, ":"); i >= 0 {
			kind = rest[:i+1]
		}
		kinds[kind]++
		out.WriteString(k + "\n")
		typ, err := h.admin.Type(ctx, k).Result()
		if err != nil {
			t.Fatal(err)
		}
		switch typ {
		case "string":
			v, err := h.admin.Get(ctx, k).Result()
			if err != nil {
				t.Fatal(err)
			}
			out.WriteString(v)
		case "hash":
			m, err := h.admin.HGetAll(ctx, k).Result()
			if err != nil {
				t.Fatal(err)
			}
			for f, v := range m {
				out.WriteString(f + "=" + v + "\n")
			}
		case "zset":
			zs, err := h.admin.ZRangeWithScores(ctx, k, 0, -1).Result()
			if err != nil {
				t.Fatal(err)
			}
			for _, z := range zs {
				fmt.Fprintf(&out, "%v %f\n", z.Member, z.Score)
			}
		default:
			t.Errorf("key %s is a %s: the store keeps no such thing", k, typ)
		}
		raw, err := h.admin.Dump(ctx, k).Result()
		if err != nil {
			t.Fatal(err)
		}
		out.WriteString(raw)
	}
	return out.Bytes(), kinds
}

// testTwoServers races increments of one number through two stores on
// the same prefix, as two servers would.
func (h *harness) testTwoServers(t *testing.T) {
	prefix := h.prefix(t)
	a := h.open(t, prefix, redisstore.Options{})
	b := h.open(t, prefix, redisstore.Options{}) // finds a's own secret
	storetest.ConcurrentIncrements(t, 200, "+14155552671", a, b)
}

func (h *harness) testAnotherSecret(t *testing.T) {
	prefix := h.prefix(t)
	a := h.open(t, prefix, redisstore.Options{Secret: fixedSecret(1)})
	put(t, a, "+14155552671", verify.Record{VerifiedAt: time.Now()})
	for name, opts := range map[string]redisstore.Options{
		"another secret":      {Prefix: prefix, Secret: fixedSecret(2)},
		"the store's own one": {Prefix: prefix},
	} {
		s, err := redisstore.Open(t.Context(), h.url(), opts)
		if err == nil {
			s.Close()
			t.Fatalf("Open with %s succeeded on numbers keyed by another secret", name)
		}
		if !strings.Contains(err.Error(), "another secret") {
			t.Errorf("Open with %s: %v, want it to name another secret", name, err)
		}
	}
	failing := errors.New("no secret today")
	if _, err := redisstore.Open(t.Context(), h.url(), redisstore.Options{Prefix: prefix,
		Secret: func(*redisstore.Store) ([]byte, error) { return nil, failing }}); !errors.Is(err, failing) {
		t.Errorf("Open with a failing secret: %v, want %v", err, failing)
	}
	again := h.open(t, prefix, redisstore.Options{Secret: fixedSecret(1)})
	if rec, err := again.Get(t.Context(), "+14155552671"); err != nil || !rec.Verified() {
		t.Errorf("reopened with the same secret, Get = %+v, %v", rec, err)
	}
}

// recordKey is where a store with fixedSecret(b) keeps phone's record.
func recordKey(t *testing.T, prefix string, b byte, phone string) (key, hexKey string) {
	secret, _ := fixedSecret(b)(nil)
	keys, err := record.NewKeys(secret)
	if err != nil {
		t.Fatal(err)
	}
	hk := hex.EncodeToString(keys.Key(phone))
	return prefix + "n:" + hk, hk
}

func (h *harness) testUnreadable(t *testing.T) {
	prefix := h.prefix(t)
	var logged bytes.Buffer
	var mu sync.Mutex
	log := slog.New(slog.NewTextHandler(lockedWriter{&mu, &logged}, nil))
	s := h.open(t, prefix, redisstore.Options{Secret: fixedSecret(1), Log: log})
	const phone = "+14155552671"
	key, _ := recordKey(t, prefix, 1, phone)
	if err := h.admin.Set(t.Context(), key, "\x09garbage", 0).Err(); err != nil {
		t.Fatal(err)
	}
	for range 2 {
		rec, err := s.Get(t.Context(), phone)
		if err != nil || !rec.Empty() {
			t.Fatalf("Get of an unreadable record = %+v, %v, want a zero record", rec, err)
		}
	}
	now := time.Now()
	err := s.Update(t.Context(), phone, func(r *verify.Record) error {
		if !r.Empty() {
			t.Errorf("Update saw %+v in an unreadable record", r)
		}
		r.VerifiedAt = now
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if rec, _ := s.Get(t.Context(), phone); !rec.VerifiedAt.Equal(now) {
		t.Errorf("the unreadable record was not replaced: %+v", rec)
	}
	mu.Lock()
	defer mu.Unlock()
	if n := strings.Count(logged.String(), "unreadable record"); n != 1 {
		t.Errorf("logged %d times, want once:\n%s", n, logged.String())
	}
	if strings.Contains(logged.String(), phone) || !strings.Contains(logged.String(), verify.MaskPhone(phone)) {
		t.Errorf("the log should name the number masked only:\n%s", logged.String())
	}
}

type lockedWriter struct {
	mu *sync.Mutex
	w  io.Writer
}

func (l lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

func (h *harness) testStaleIndex(t *testing.T) {
	prefix := h.prefix(t)
	s := h.open(t, prefix, redisstore.Options{Secret: fixedSecret(1)})
	now := time.Now()
	good, bad := "+14155552671", "+14155552672"
	for _, p := range []string{good, bad} {
		put(t, s, p, verify.Record{Pending: &verify.Pending{Secret: "s", Digits: 6, SentAt: now, ExpiresAt: now.Add(-time.Second)}})
	}
	_, badKey := recordKey(t, prefix, 1, bad)
	ctx := t.Context()
	if err := h.admin.HSet(ctx, prefix+"sealed", badKey, "not sealed by this secret").Err(); err != nil {
		t.Fatal(err)
	}
	// An entry with no number at all.
	if err := h.admin.ZAdd(ctx, prefix+"exp", redis.Z{Score: 1, Member: "00ff"}).Err(); err != nil {
		t.Fatal(err)
	}
	got, err := s.Expired(ctx, now, 10)
	if err != nil || len(got) != 1 || got[0] != good {
		t.Fatalf("Expired = %v, %v, want [%s]", got, err, good)
	}
	for _, m := range []string{badKey, "00ff"} {
		if err := h.admin.ZScore(ctx, prefix+"exp", m).Err(); !errors.Is(err, redis.Nil) {
			t.Errorf("the stale entry %s is still indexed (%v)", m, err)
		}
		if ok, _ := h.admin.HExists(ctx, prefix+"sealed", m).Result(); ok {
			t.Errorf("the stale entry %s still has a sealed number", m)
		}
	}
}

// testForgetPrefix checks that a prefix holding SCAN's pattern characters
// matches itself only.
func (h *harness) testForgetPrefix(t *testing.T) {
	base := h.prefix(t)
	globby := h.open(t, base+"*:", redisstore.Options{Secret: fixedSecret(1)})
	other := h.open(t, base+"x:", redisstore.Options{Secret: fixedSecret(1)})
	old := time.Now().Add(-365 * 24 * time.Hour)
	put(t, globby, "+14155552671", verify.Record{VerifiedAt: old})
	put(t, other, "+14155552672", verify.Record{VerifiedAt: old})
	if n, err := globby.ForgetVerifiedBefore(time.Now()); err != nil || n != 1 {
		t.Errorf("ForgetVerifiedBefore = %d, %v, want 1", n, err)
	}
	if rec, _ := other.Get(t.Context(), "+14155552672"); !rec.Verified() {
		t.Error("ForgetVerifiedBefore under one prefix removed another prefix's record")
	}
}

func (h *harness) testSpentExpire(t *testing.T) {
	prefix := h.prefix(t)
	s := h.open(t, prefix, redisstore.Options{})
	ctx := t.Context()
	expires := time.Now().Add(5 * time.Minute)
	if fresh, err := s.Spend(ctx, "id1", expires); err != nil || !fresh {
		t.Fatalf("Spend = %v, %v", fresh, err)
	}
	at, err := h.admin.PExpireTime(ctx, prefix+"spent:id1").Result()
	if err != nil {
		t.Fatal(err)
	}
	if d := time.UnixMilli(int64(at / time.Millisecond)).Sub(expires); d < -time.Millisecond || d > time.Millisecond {
		t.Errorf("the spent token expires %v from the token", d)
	}
	if n, err := s.ForgetSpent(time.Now().Add(time.Hour)); err != nil || n != 0 {
		t.Errorf("ForgetSpent = %d, %v, want 0: Redis expires them itself", n, err)
	}
	if fresh, _ := s.Spend(ctx, "id1", expires); fresh {
		t.Error("ForgetSpent forgot a token that has not expired")
	}
	// A token already past its expiry is remembered a while anyway.
	for i, want := range []bool{true, false} {
		if fresh, err := s.Spend(ctx, "late", time.Now().Add(-time.Second)); err != nil || fresh != want {
			t.Errorf("Spend of an expired id, call %d = %v, %v, want %v", i+1, fresh, err, want)
		}
	}
}

func (h *harness) testBackup(t *testing.T) {
	s := h.open(t, h.prefix(t), redisstore.Options{})
	var buf bytes.Buffer
	n, err := s.Backup(&buf)
	if err == nil || !strings.Contains(err.Error(), "persistence") || n != 0 || buf.Len() != 0 {
		t.Errorf("Backup = %d, %v, want an error pointing at Redis's own persistence", n, err)
	}
}

// testOutage cuts the store off Redis, then makes Redis hang, and checks
// that every call fails within seconds, and that the store works again
// once Redis is back.
func (h *harness) testOutage(t *testing.T) {
	quietRedisLog(t)
	prefix := h.prefix(t)
	p := newProxy(t, h.addr)
	opts := redisstore.Options{Prefix: prefix}
	s, err := redisstore.Open(t.Context(), "redis://"+p.addr()+"/0", opts)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	const phone = "+14155552671"
	ctx := t.Context()
	put(t, s, phone, verify.Record{VerifiedAt: time.Now()})

	calls := map[string]func() error{
		"Ping": s.Ping,
		"Update": func() error {
			return s.Update(ctx, phone, func(r *verify.Record) error { r.Sends.Count++; r.Sends.Until = time.Now().Add(time.Hour); return nil })
		},
		"Get":     func() error { _, err := s.Get(ctx, phone); return err },
		"Expired": func() error { _, err := s.Expired(ctx, time.Now(), 10); return err },
		"Spend":   func() error { _, err := s.Spend(ctx, "x", time.Now().Add(time.Minute)); return err },
	}
	for _, mode := range []string{"down", "hung"} {
		p.set(mode)
		for name, call := range calls {
			start := time.Now()
			err := call()
			took := time.Since(start)
			if err == nil || took > 5*time.Second {
				t.Errorf("Redis %s: %s = %v after %v, want an error within seconds", mode, name, err, took)
			}
			t.Logf("Redis %s: %s failed after %v: %v", mode, name, took.Round(time.Millisecond), err)
		}
		p.set("up")
		deadline := time.Now().Add(15 * time.Second)
		for s.Ping() != nil {
			if time.Now().After(deadline) {
				t.Fatalf("the store did not reconnect after Redis was %s", mode)
			}
			time.Sleep(100 * time.Millisecond)
		}
		for name, call := range calls {
			if err := call(); err != nil {
				t.Errorf("after Redis was %s: %s: %v", mode, name, err)
			}
		}
	}
}

func TestOpenFailsPromptlyWithoutRedis(t *testing.T) {
	quietRedisLog(t)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close() // nothing listens there now
	start := time.Now()
	s, err := redisstore.Open(context.Background(), "redis://"+addr+"/0", redisstore.Options{})
	if err == nil {
		s.Close()
		t.Fatal("Open succeeded without a Redis")
	}
	if took := time.Since(start); took > 5*time.Second {
		t.Errorf("Open took %v to fail", took)
	}
	if _, err := redisstore.Open(context.Background(), "http://example.com", redisstore.Options{}); err == nil {
		t.Error("Open accepted a URL that is not Redis's")
	}
}

// quietRedisLog keeps go-redis's own reports of failed dials, which the
// test causes, out of the output while t runs.
func quietRedisLog(t *testing.T) {
	redis.SetLogger(quietLogger{})
	t.Cleanup(func() { redis.SetLogger(stderrLogger{}) })
}

type quietLogger struct{}

func (quietLogger) Printf(context.Context, string, ...any) {}

type stderrLogger struct{}

func (stderrLogger) Printf(_ context.Context, format string, v ...any) {
	fmt.Fprintf(os.Stderr, "redis: "+format+"\n", v...)
}

// proxy stands between a store and Redis: "up" forwards, "down" refuses
// connections, "hung" takes them and answers nothing.
type proxy struct {
	t      *testing.T
	target string
	l      net.Listener

	mu    sync.Mutex
	mode  string
	conns map[net.Conn]struct{}
}

func newProxy(t *testing.T, target string) *proxy {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &proxy{t: t, target: target, l: l, mode: "up", conns: map[net.Conn]struct{}{}}
	go p.serve(l)
	t.Cleanup(func() { p.set("closed") })
	return p
}

func (p *proxy) addr() string { return p.l.Addr().String() }

// set changes the mode; every connection open until then is dropped.
func (p *proxy) set(mode string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for c := range p.conns {
		c.Close()
	}
	clear(p.conns)
	wasDown := p.mode == "down" || p.mode == "closed"
	p.mode = mode
	switch {
	case (mode == "down" || mode == "closed") && !wasDown:
		p.l.Close()
	case mode != "down" && mode != "closed" && wasDown:
		l, err := net.Listen("tcp", p.l.Addr().String())
		if err != nil {
			p.t.Errorf("proxy: listen again: %v", err)
			return
		}
		p.l = l
		go p.serve(l)
	}
}

func (p *proxy) serve(l net.Listener) {
	for {
		c, err := l.Accept()
		if err != nil {
			return
		}
		p.mu.Lock()
		mode := p.mode
		p.conns[c] = struct{}{}
		p.mu.Unlock()
		if mode == "hung" {
			continue // held open, never answered
		}
		go p.forward(c)
	}
}

func (p *proxy) forward(c net.Conn) {
	up, err := net.DialTimeout("tcp", p.target, time.Second)
	if err != nil {
		c.Close()
		return
	}
	p.mu.Lock()
	p.conns[up] = struct{}{}
	p.mu.Unlock()
	go func() { io.Copy(up, c); up.Close() }()
	io.Copy(c, up)
	c.Close()
}
