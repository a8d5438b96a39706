package verify

import (
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

// countingLimiters is a Deps.Limiters that records what it was asked to
// build and builds in-memory limiters, or refusing ones when refuse is set.
type countingLimiters struct {
	mu     sync.Mutex
	built  [][]string // the limit names of every limiter built
	refuse string     // the limit every Take refuses with, if set
}

func (c *countingLimiters) build(limits ...Limit) RateLimiter {
	c.mu.Lock()
	defer c.mu.Unlock()
	var names []string
	for _, l := range limits {
		names = append(names, l.Name)
	}
	c.built = append(c.built, names)
	if c.refuse != "" {
		return refusing{c.refuse}
	}
	return NewLimiter(limits...)
}

// refusing is a RateLimiter whose store is down: it refuses everything.
type refusing struct{ limit string }

func (r refusing) Take(Subject, time.Time) (time.Duration, string, bool) {
	return 5 * time.Second, r.limit, false
}
func (refusing) Give(Subject) {}
func (r refusing) Wait(Subject, time.Time) (time.Duration, string) {
	return 5 * time.Second, r.limit
}
func (refusing) Full(time.Time, int) []Hit { return nil }

func TestServiceBuildsItsThreeLimitersThroughDepsLimiters(t *testing.T) {
	h := newHarness(t)
	factory := &countingLimiters{}
	deps := h.deps()
	deps.Limiters = factory.build
	if _, err := NewService(DefaultConfig(), deps); err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, names := range factory.built {
		got = append(got, strings.Join(names, ","))
	}
	slices.Sort(got)
	want := []string{"connection,client,prefix", "connection,client,prefix,minute,hour", "lookup"}
	if !slices.Equal(got, want) {
		t.Fatalf("built limiters over %q, want %q", got, want)
	}
	for _, names := range factory.built {
		seen := map[string]bool{}
		for _, n := range names {
			if seen[n] {
				t.Fatalf("limiter over %q repeats %q", names, n)
			}
			seen[n] = true
		}
	}
}

func TestServiceCountsSendsInTheLimitersItWasGiven(t *testing.T) {
	obs := &observed{}
	h := newHarness(t)
	deps := h.deps()
	deps.Observe = obs
	deps.Limiters = (&countingLimiters{refuse: "store_unavailable"}).build
	svc, err := NewService(h.svc.cfg, deps)
	if err != nil {
		t.Fatal(err)
	}
	o := mustRegister(t, svc, alice, Registration{Phone: phone})
	wantKind(t, o, RateLimited)
	if o.RetryAfter != 5*time.Second {
		t.Fatalf("retry after %v, want the limiter's 5s", o.RetryAfter)
	}
	if h.sms.count() != 0 {
		t.Fatal("a refused send was texted")
	}
	if len(obs.limits) != 1 || obs.limits[0] != "store_unavailable" {
		t.Fatalf("observed limits %v, want store_unavailable", obs.limits)
	}
	wantKind(t, mustResume(t, svc, alice, phone), Locked) // lookups count there too
}

func TestWithoutDepsLimitersTheLimitersAreInMemory(t *testing.T) {
	h := newHarness(t, func(c *Config) { c.Limits.PerConnection = Rate{N: 1, Per: time.Hour}; c.ResendAfter = 0 })
	for name, l := range map[string]RateLimiter{"limits": h.svc.limits, "lookups": h.svc.lookups, "expecting": h.svc.expecting} {
		if _, ok := l.(*Limiter); !ok {
			t.Fatalf("%s is a %T, want *Limiter", name, l)
		}
	}
	wantKind(t, h.register(t, alice), CodeSent)
	o := mustRegister(t, h.svc, alice, Registration{Phone: "+14155552672"})
	wantKind(t, o, RateLimited)
	if o.RetryAfter != time.Hour {
		t.Fatalf("retry after %v, want an hour", o.RetryAfter)
	}
	if hits := h.svc.Limited(10); len(hits) != 1 || hits[0].Limit != "connection" || hits[0].Key != alice.ConnID {
		t.Fatalf("limited = %+v, want alice's connection", hits)
	}
	h.clock.Advance(time.Hour)
	wantKind(t, mustRegister(t, h.svc, alice, Registration{Phone: "+14155552672"}), CodeSent)
}

func TestInMemoryLimiterFixedWindows(t *testing.T) {
	t0 := time.Date(2026, 11, 22, 12, 0, 0, 0, time.UTC)
	s := Subject{Phone: "+14155552671", Conn: "c1", Client: "192.0.2.1"}
	var l RateLimiter = NewLimiter(
		Limit{"client", Rate{N: 3, Per: time.Hour}, ByClient},
		Limit{"connection", Rate{N: 1, Per: time.Minute}, ByConn},
		Limit{"off", Rate{}, Everyone})
	if _, _, ok := l.Take(s, t0); !ok {
		t.Fatal("first take refused")
	}
	// The connection is full: refused by it, counting nothing.
	for range 3 {
		if wait, limit, ok := l.Take(s, t0.Add(10*time.Second)); ok || limit != "connection" || wait != 50*time.Second {
			t.Fatalf("take = %v %q %v, want 50s of connection", wait, limit, ok)
		}
	}
	other := s
	for _, conn := range []string{"c2", "c3"} {
		other.Conn = conn
		if _, _, ok := l.Take(other, t0.Add(20*time.Second)); !ok {
			t.Fatalf("take on %s refused", conn)
		}
	}
	other.Conn = "c4"
	if wait, limit := l.Wait(other, t0.Add(30*time.Second)); limit != "client" || wait != time.Hour-30*time.Second {
		t.Fatalf("wait = %v %q, want the client's window", wait, limit)
	}
	hits := l.Full(t0.Add(30*time.Second), 10)
	if len(hits) != 4 {
		t.Fatalf("full = %+v, want client and 3 connections", hits)
	}
	l.Give(other)
	if _, _, ok := l.Take(other, t0.Add(40*time.Second)); !ok {
		t.Fatal("a take given back was not free again")
	}
	if wait, limit, ok := l.Take(Subject{Conn: "c5", Client: s.Client}, t0.Add(time.Hour)); !ok {
		t.Fatalf("take after the window = %v %q, want granted", wait, limit)
	}
}
