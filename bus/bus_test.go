package bus

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"net"
	"os"
	"reflect"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"verifier/verify"
)

// testRedis connects to the Redis named by VERIFIER_TEST_REDIS, or skips.
// Other packages' tests share it: each test uses its own channel and never
// flushes anything.
func testRedis(t *testing.T) *redis.Client {
	t.Helper()
	addr := os.Getenv("VERIFIER_TEST_REDIS")
	if addr == "" {
		t.Skip("no Redis at VERIFIER_TEST_REDIS: skipping (set it to host:port to run)")
	}
	rdb := newClient(t, addr)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if err := rdb.Ping(ctx).Err(); err != nil {
		t.Skipf("no Redis at VERIFIER_TEST_REDIS: skipping (%s: %v)", addr, err)
	}
	return rdb
}

func newClient(t *testing.T, addr string) *redis.Client {
	rdb := redis.NewClient(&redis.Options{Addr: addr, DialTimeout: time.Second, MaxRetries: -1})
	t.Cleanup(func() { rdb.Close() })
	return rdb
}

func testChannel() string { return "verifier:test:" + randomID() }

type published struct {
	phone, except string
	o             verify.Outcome
}

type told struct {
	conn string
	o    verify.Outcome
}

// fake is a local publisher that records what it got.
type fake struct {
	mu    sync.Mutex
	pubs  []published
	tells []told
}

func (f *fake) Publish(phone string, o verify.Outcome, except string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.pubs = append(f.pubs, published{phone, except, o})
}

func (f *fake) Tell(conn string, o verify.Outcome) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.tells = append(f.tells, told{conn, o})
}

func (f *fake) got() ([]published, []told) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]published(nil), f.pubs...), append([]told(nil), f.tells...)
}

func (f *fake) hasPublish(phone string) bool {
	pubs, _ := f.got()
	for _, p := range pubs {
		if p.phone == phone {
			return true
		}
	}
	return false
}

// logBuf collects log lines.
type logBuf struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (l *logBuf) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.Write(p)
}

func (l *logBuf) count(s string) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return strings.Count(l.buf.String(), s)
}

func (l *logBuf) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.String()
}

// server is one verifier process: a Bus over a fake local publisher whose
// connections are the ids starting with prefix.
type server struct {
	bus    *Bus
	local  *fake
	logs   *logBuf
	runErr chan error
}

func startServer(t *testing.T, rdb *redis.Client, channel, prefix string, tune ...func(*Bus)) *server {
	t.Helper()
	s := &server{local: &fake{}, logs: &logBuf{}, runErr: make(chan error, 1)}
	log := slog.New(slog.NewTextHandler(s.logs, nil))
	s.bus = New(rdb, s.local, func(conn string) bool { return strings.HasPrefix(conn, prefix) },
		Options{Channel: channel, Log: log})
	for _, f := range tune {
		f(s.bus)
	}
	go func() { s.runErr <- s.bus.Run(context.Background()) }()
	t.Cleanup(func() {
		s.bus.Close()
		select {
		case <-s.runErr:
		case <-time.After(5 * time.Second):
			t.Error("Run did not return after Close")
		}
	})
	return s
}

// waitSubscribers waits until channel has n subscribers.
func waitSubscribers(t *testing.T, rdb *redis.Client, channel string, n int64) {
	t.Helper()
	eventually(t, "subscribers on the channel", func() bool {
		got, err := rdb.PubSubNumSub(context.Background(), channel).Result()
		return err == nil && got[channel] == n
	})
}

func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// barrier publishes a marker from `from` and waits until every one of
// `to` has it: a Bus sends in order and Redis delivers in order, so
// whatever `from` sent before has been handled by then.
func barrier(t *testing.T, from *server, to ...*server) {
	t.Helper()
	phone := "+marker-" + randomID()
	from.bus.Publish(phone, verify.Outcome{Kind: verify.DevText, Phone: phone}, "")
	for _, s := range to {
		eventually(t, "the marker", func() bool { return s.local.hasPublish(phone) })
	}
}

// withoutMarkers drops the barriers' events.
func withoutMarkers(pubs []published) []published {
	var out []published
	for _, p := range pubs {
		if !strings.HasPrefix(p.phone, "+marker-") {
			out = append(out, p)
		}
	}
	return out
}

// fullOutcome sets every field of an Outcome.
func fullOutcome() verify.Outcome {
	return verify.Outcome{
		Kind: verify.Verified, Phone: "+15550100", Channel: "sms",
		ExpiresIn: 5 * time.Minute, ResendIn: 30 * time.Second, CodeLength: 6, AttemptsLeft: 3,
		RetryAfter: time.Hour + time.Nanosecond, Country: "US",
		VerifiedAt: time.Date(2026, 1, 2, 3, 4, 5, 6, time.UTC), Token: "tok-secret",
		Status: "delivered", ErrorCode: "30003", Body: "Your code is 123456", Code: "123456",
		SendTo: "+15550199", Site: "shop.example", AppURL: "otpauth://totp/x?secret=ABC", AppSecret: "ABC",
	}
}

func sameOutcome(t *testing.T, where string, got, want verify.Outcome) {
	t.Helper()
	if !got.VerifiedAt.Equal(want.VerifiedAt) {
		t.Errorf("%s: VerifiedAt %v, want %v", where, got.VerifiedAt, want.VerifiedAt)
	}
	got.VerifiedAt, want.VerifiedAt = time.Time{}, time.Time{}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("%s: got %+v\nwant %+v", where, got, want)
	}
}

func TestPublishReachesEveryServerOnceWithExceptAndNoToken(t *testing.T) {
	rdb := testRedis(t)
	ch := testChannel()
	raw := rdb.Subscribe(context.Background(), ch)
	defer raw.Close()
	a, b, c := startServer(t, rdb, ch, "cA."), startServer(t, rdb, ch, "cB."), startServer(t, rdb, ch, "cC.")
	waitSubscribers(t, rdb, ch, 4)

	o := fullOutcome()
	a.bus.Publish(o.Phone, o, "cB.3")
	want := o
	want.Token = ""

	// A's own connections get it at once, before Redis is involved.
	if pubs, _ := a.local.got(); len(pubs) != 1 {
		t.Fatalf("A's local got %d publishes right after Publish, want 1", len(pubs))
	}
	barrier(t, a, b, c)
	for name, s := range map[string]*server{"A": a, "B": b, "C": c} {
		pubs, tells := s.local.got()
		pubs = withoutMarkers(pubs)
		if len(pubs) != 1 || len(tells) != 0 {
			t.Fatalf("%s got %d publishes and %d tells, want 1 and 0", name, len(pubs), len(tells))
		}
		if pubs[0].phone != o.Phone || pubs[0].except != "cB.3" {
			t.Errorf("%s: Publish(%q, _, %q), want (%q, _, %q)", name, pubs[0].phone, pubs[0].except, o.Phone, "cB.3")
		}
		sameOutcome(t, name, pubs[0].o, want)
	}

	// On the wire: one message, without the token.
	msg, err := raw.ReceiveMessage(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(msg.Payload, "tok-secret") || strings.Contains(msg.Payload, `"token"`) {
		t.Errorf("the token travelled: %s", msg.Payload)
	}
	var m message
	if err := json.Unmarshal([]byte(msg.Payload), &m); err != nil || m.Type != "publish" || m.Origin == "" {
		t.Errorf("message %s: %+v, %v", msg.Payload, m, err)
	}
}

func TestTellForAnotherServersConnectionReachesOnlyThatServerWithItsToken(t *testing.T) {
	rdb := testRedis(t)
	ch := testChannel()
	a, b, c := startServer(t, rdb, ch, "cA."), startServer(t, rdb, ch, "cB."), startServer(t, rdb, ch, "cC.")
	waitSubscribers(t, rdb, ch, 3)

	o := fullOutcome()
	a.bus.Tell("cC.9", o)
	a.bus.Tell("cGone.1", o) // a server that is no more: nobody delivers it
	barrier(t, a, b, c)

	for name, s := range map[string]*server{"A": a, "B": b} {
		if _, tells := s.local.got(); len(tells) != 0 {
			t.Errorf("%s got tells %+v, want none", name, tells)
		}
	}
	pubs, tells := c.local.got()
	if len(withoutMarkers(pubs)) != 0 || len(tells) != 1 || tells[0].conn != "cC.9" {
		t.Fatalf("C got publishes %+v and tells %+v, want the one tell to cC.9", pubs, tells)
	}
	sameOutcome(t, "C", tells[0].o, o) // token and all
}

// publishCounter counts the PUBLISH commands a client sends.
type publishCounter struct{ n atomic.Int64 }

func (*publishCounter) DialHook(next redis.DialHook) redis.DialHook { return next }
func (p *publishCounter) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		if cmd.Name() == "publish" {
			p.n.Add(1)
		}
		return next(ctx, cmd)
	}
}
func (*publishCounter) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return next
}

func TestTellForOwnConnectionNeverTouchesRedis(t *testing.T) {
	rdb := testRedis(t)
	ch := testChannel()
	aClient := newClient(t, rdb.Options().Addr)
	var count publishCounter
	aClient.AddHook(&count)
	a, b := startServer(t, aClient, ch, "cA."), startServer(t, rdb, ch, "cB.")
	waitSubscribers(t, rdb, ch, 2)

	o := fullOutcome()
	a.bus.Tell("cA.1", o)
	if _, tells := a.local.got(); len(tells) != 1 || tells[0].conn != "cA.1" {
		t.Fatalf("A's local got tells %+v, want the one to cA.1 at once", tells)
	} else {
		sameOutcome(t, "A", tells[0].o, o)
	}
	barrier(t, a, b) // sent after the tell, by the same queue
	if n := count.n.Load(); n != 1 {
		t.Errorf("A sent %d PUBLISHes, want 1 (the marker only)", n)
	}
	if _, tells := b.local.got(); len(tells) != 0 {
		t.Errorf("B got tells %+v", tells)
	}

	// And with no Redis at all.
	dead := newClient(t, rdb.Options().Addr)
	dead.Close()
	local := &fake{}
	lone := New(dead, local, func(conn string) bool { return conn == "cX.1" }, Options{Channel: ch})
	defer lone.Close()
	lone.Tell("cX.1", o)
	if _, tells := local.got(); len(tells) != 1 {
		t.Errorf("with Redis closed, the local tell did not arrive: %+v", tells)
	}
}

func TestBadMessagesAreDroppedAndGoodOnesStillArrive(t *testing.T) {
	rdb := testRedis(t)
	ch := testChannel()
	a, b := startServer(t, rdb, ch, "cA."), startServer(t, rdb, ch, "cB.")
	waitSubscribers(t, rdb, ch, 2)

	huge, _ := json.Marshal(message{Origin: "other", Type: "publish", Phone: "+15550101",
		O: outcome{Kind: uint8(verify.DevText), Body: strings.Repeat("x", MaxMessage)}})
	bad := []string{
		"not json",
		`{"origin":"other","type":"publish","phone":"+15550101","o":{"kind":2}`, // cut short
		`{"origin":"other","type":"publish","o":{"kind":2}}`,                    // no phone
		`{"origin":"other","type":"tell","o":{"kind":2}}`,                       // no conn
		`{"origin":"other","type":"shout","phone":"+15550101","o":{"kind":2}}`,
		`{"origin":"other","type":"tell","conn":"cB.1","o":{"kind":250}}`,
		`{"type":"tell","conn":"cB.1","o":{"kind":2}}`, // no origin
		string(huge),
	}
	for _, p := range bad {
		if err := rdb.Publish(context.Background(), ch, p).Err(); err != nil {
			t.Fatal(err)
		}
	}
	a.bus.Publish("+15550102", verify.Outcome{Kind: verify.CodeSent, Phone: "+15550102"}, "")
	eventually(t, "the good message", func() bool { return b.local.hasPublish("+15550102") })

	pubs, tells := b.local.got()
	if len(pubs) != 1 || len(tells) != 0 {
		t.Errorf("B got publishes %+v and tells %+v, want only the good one", pubs, tells)
	}
	for _, why := range []string{"too large", "not a bus message", "publish without a phone",
		"tell without a connection", "unknown type", "unknown kind", "no origin"} {
		if b.logs.count("dropped a message: "+why) == 0 {
			t.Errorf("no log line for a message dropped as %q; logs:\n%s", why, b.logs)
		}
	}
}

func TestNothingIsDeliveredAfterClose(t *testing.T) {
	rdb := testRedis(t)
	ch := testChannel()
	a, b, c := startServer(t, rdb, ch, "cA."), startServer(t, rdb, ch, "cB."), startServer(t, rdb, ch, "cC.")
	waitSubscribers(t, rdb, ch, 3)

	b.bus.Close()
	select {
	case err := <-b.runErr:
		if err != nil {
			t.Errorf("Run after Close: %v, want nil", err)
		}
		b.runErr <- err // for the cleanup
	case <-time.After(5 * time.Second):
		t.Fatal("Run did not return after Close")
	}
	a.bus.Publish("+15550103", verify.Outcome{Kind: verify.CodeSent, Phone: "+15550103"}, "")
	a.bus.Tell("cB.1", verify.Outcome{Kind: verify.Verified, Token: "t"})
	// A message already read when Close came is not delivered either.
	payload, _ := json.Marshal(message{Origin: "other", Type: "publish", Phone: "+15550104", O: outcome{Kind: 1}})
	b.bus.handle(string(payload))
	barrier(t, a, c)
	if pubs, tells := b.local.got(); len(pubs) != 0 || len(tells) != 0 {
		t.Errorf("B got publishes %+v and tells %+v after Close", pubs, tells)
	}

	// A closed Bus still serves its own connections, and no others.
	b.bus.Publish("+15550105", verify.Outcome{Kind: verify.CodeSent, Phone: "+15550105"}, "")
	b.bus.Tell("cB.2", verify.Outcome{Kind: verify.Verified})
	if pubs, tells := b.local.got(); len(pubs) != 1 || len(tells) != 1 {
		t.Errorf("closed B's own connections got publishes %+v and tells %+v, want one each", pubs, tells)
	}
	barrier(t, a, c)
	if c.local.hasPublish("+15550105") {
		t.Error("a closed Bus still told the other servers")
	}
}

func freeAddr(t *testing.T) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

func TestRedisDownPublishStaysLocalAndLogsOnce(t *testing.T) {
	// No Redis needed: nothing listens at the address.
	rdb := newClient(t, freeAddr(t))
	s := startServer(t, rdb, testChannel(), "cA.")

	start := time.Now()
	for range 3 {
		s.bus.Publish("+15550106", verify.Outcome{Kind: verify.CodeSent, Phone: "+15550106"}, "")
		s.bus.Tell("cB.1", verify.Outcome{Kind: verify.Verified, Token: "t"})
	}
	if d := time.Since(start); d > 100*time.Millisecond {
		t.Errorf("Publish and Tell took %v with Redis down", d)
	}
	if pubs, _ := s.local.got(); len(pubs) != 3 {
		t.Errorf("local got %d publishes, want 3", len(pubs))
	}
	const notTold = "the other servers were not told"
	eventually(t, "the log line", func() bool { return s.logs.count(notTold) > 0 })
	time.Sleep(time.Second) // Run retries a few times meanwhile
	if n := s.logs.count(notTold); n != 1 {
		t.Errorf("%d lines say the others were not told, want 1 (rate-limited):\n%s", n, s.logs)
	}
	if n := s.logs.count("lost Redis"); n != 1 {
		t.Errorf("%d lines say Redis was lost, want 1:\n%s", n, s.logs)
	}
}

// proxy forwards TCP to Redis, and can cut or freeze the way.
type proxy struct {
	t      *testing.T
	target string
	addr   string

	mu     sync.Mutex
	ln     net.Listener
	conns  []net.Conn
	open   chan struct{} // closed while bytes flow
	closed bool
}

func newProxy(t *testing.T, target string) *proxy {
	p := &proxy{t: t, target: target, addr: "127.0.0.1:0", open: make(chan struct{})}
	close(p.open)
	p.up()
	t.Cleanup(p.down)
	return p
}

func (p *proxy) up() {
	ln, err := net.Listen("tcp", p.addr)
	if err != nil {
		p.t.Fatal(err)
	}
	p.mu.Lock()
	p.ln, p.addr = ln, ln.Addr().String()
	p.mu.Unlock()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			r, err := net.Dial("tcp", p.target)
			if err != nil {
				c.Close()
				continue
			}
			p.mu.Lock()
			p.conns = append(p.conns, c, r)
			p.mu.Unlock()
			go p.pipe(c, r)
			go p.pipe(r, c)
		}
	}()
}

// pipe copies src to dst, holding bytes while the proxy is frozen.
func (p *proxy) pipe(dst, src net.Conn) {
	defer dst.Close()
	defer src.Close()
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		if n > 0 {
			p.mu.Lock()
			open := p.open
			p.mu.Unlock()
			<-open
			if _, err := dst.Write(buf[:n]); err != nil {
				return
			}
		}
		if err != nil {
			return
		}
	}
}

// down closes the listener and every connection: Redis is gone.
func (p *proxy) down() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.ln.Close()
	for _, c := range p.conns {
		c.Close()
	}
	p.conns = nil
}

func (p *proxy) freeze() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.open = make(chan struct{})
}

func (p *proxy) thaw() {
	p.mu.Lock()
	defer p.mu.Unlock()
	close(p.open)
}

func TestResubscribesAfterRedisComesBack(t *testing.T) {
	rdb := testRedis(t)
	ch := testChannel()
	px := newProxy(t, rdb.Options().Addr)
	a, b := startServer(t, rdb, ch, "cA."), startServer(t, newClient(t, px.addr), ch, "cB.")
	waitSubscribers(t, rdb, ch, 2)
	a.bus.Publish("+15550107", verify.Outcome{Kind: verify.CodeSent, Phone: "+15550107"}, "")
	eventually(t, "B before the outage", func() bool { return b.local.hasPublish("+15550107") })

	px.down()
	eventually(t, "B to notice", func() bool { return b.logs.count("lost Redis") > 0 })
	waitSubscribers(t, rdb, ch, 1)
	time.Sleep(700 * time.Millisecond) // B retries meanwhile
	px.up()
	eventually(t, "B to subscribe again", func() bool { return b.logs.count("Redis is back") > 0 })
	waitSubscribers(t, rdb, ch, 2)

	a.bus.Publish("+15550108", verify.Outcome{Kind: verify.CodeSent, Phone: "+15550108"}, "")
	eventually(t, "B after the outage", func() bool { return b.local.hasPublish("+15550108") })
	if n := b.logs.count("lost Redis"); n != 1 {
		t.Errorf("%d lines say Redis was lost, want 1:\n%s", n, b.logs)
	}
}

func TestASilentRedisIsLeftAndSubscribedAgain(t *testing.T) {
	rdb := testRedis(t)
	ch := testChannel()
	px := newProxy(t, rdb.Options().Addr)
	a := startServer(t, rdb, ch, "cA.")
	b := startServer(t, newClient(t, px.addr), ch, "cB.", func(b *Bus) { b.health = 100 * time.Millisecond })
	waitSubscribers(t, rdb, ch, 2)

	px.freeze() // the connection stays open, but nothing comes back
	eventually(t, "B to give up on the silent connection", func() bool { return b.logs.count("lost Redis") > 0 })
	time.Sleep(500 * time.Millisecond)
	px.thaw()
	eventually(t, "B to subscribe again", func() bool { return b.logs.count("Redis is back") > 0 })

	a.bus.Publish("+15550109", verify.Outcome{Kind: verify.CodeSent, Phone: "+15550109"}, "")
	eventually(t, "B after the silence", func() bool { return b.local.hasPublish("+15550109") })
	if n := b.logs.count("lost Redis"); n != 1 {
		t.Errorf("%d lines say Redis was lost, want 1:\n%s", n, b.logs)
	}
}

func TestEventsQueuedTooLongAreNotSent(t *testing.T) {
	rdb := newClient(t, freeAddr(t)) // no Redis needed
	var count publishCounter
	rdb.AddHook(&count)
	s := startServer(t, rdb, testChannel(), "cA.", func(b *Bus) { b.maxAge = time.Nanosecond })
	for range 5 {
		s.bus.Publish("+15550110", verify.Outcome{Kind: verify.CodeSent, Phone: "+15550110"}, "")
	}
	eventually(t, "the queue to drain", func() bool { return len(s.bus.queue) == 0 })
	eventually(t, "the log line", func() bool { return s.logs.count("queued too long") == 1 })
	if n := count.n.Load(); n != 0 {
		t.Errorf("%d stale events were PUBLISHed", n)
	}
	if pubs, _ := s.local.got(); len(pubs) != 5 {
		t.Errorf("local got %d publishes, want 5", len(pubs))
	}
}
