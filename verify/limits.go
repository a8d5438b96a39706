package verify

import (
	"sync"
	"time"
)

// Rate allows N sends per window Per. N <= 0 means unlimited.
type Rate struct {
	N   int
	Per time.Duration
}

// Limits caps how many codes may be sent, per key and for the whole
// deployment (the cost cap).
type Limits struct {
	PerNumber     Rate
	PerConnection Rate
	PerClient     Rate // per client IP address
	PerPrefix     Rate // per number range: all but the last PrefixOmits digits
	PerMinute     int  // whole deployment
	PerHour       int  // whole deployment
}

// DefaultLimits stop a script from texting thousands of numbers while a
// person who mistypes or loses a text a few times never notices them.
func DefaultLimits() Limits {
	return Limits{
		PerNumber:     Rate{N: 5, Per: time.Hour},
		PerConnection: Rate{N: 10, Per: time.Hour},
		PerClient:     Rate{N: 30, Per: time.Hour},
		PerPrefix:     Rate{N: 20, Per: time.Hour},
		PerMinute:     60,
		PerHour:       1000,
	}
}

// PrefixOmits is how many final digits a number range leaves out: numbers
// that differ only in them share one PerPrefix limit, so a sweep through a
// block of 1,000 numbers is stopped.
const PrefixOmits = 3

// Limit names, as reported to an Observer.
var limitNames = []string{"number", "connection", "client", "prefix", "minute", "hour"}

type window struct {
	start time.Time
	count int
}

// counter is a fixed-window counter per key.
type counter struct {
	rate    Rate
	windows map[string]*window
}

func (c *counter) retryAfter(key string, now time.Time) time.Duration {
	if c.rate.N <= 0 {
		return 0
	}
	w := c.windows[key]
	if w == nil || now.Sub(w.start) >= c.rate.Per || w.count < c.rate.N {
		return 0
	}
	return w.start.Add(c.rate.Per).Sub(now)
}

func (c *counter) take(key string, now time.Time) {
	if c.rate.N <= 0 {
		return
	}
	w := c.windows[key]
	if w == nil {
		w = &window{}
		c.windows[key] = w
	}
	if now.Sub(w.start) >= c.rate.Per {
		w.start, w.count = now, 0
	}
	w.count++
}

func (c *counter) give(key string) {
	if w := c.windows[key]; w != nil && w.count > 0 {
		w.count--
	}
}

func (c *counter) forgetOld(now time.Time) {
	for k, w := range c.windows {
		if now.Sub(w.start) >= c.rate.Per {
			delete(c.windows, k)
		}
	}
}

// limiter checks and takes all limits under one lock, so that a send is
// either counted everywhere or nowhere.
type limiter struct {
	mu       sync.Mutex
	counters []*counter // in the order of limitNames
	ops      int
}

func newLimiter(l Limits) *limiter {
	rates := []Rate{l.PerNumber, l.PerConnection, l.PerClient, l.PerPrefix,
		{N: l.PerMinute, Per: time.Minute}, {N: l.PerHour, Per: time.Hour}}
	lim := &limiter{}
	for _, r := range rates {
		lim.counters = append(lim.counters, &counter{rate: r, windows: map[string]*window{}})
	}
	return lim
}

func limiterKeys(phone string, who Requester) []string {
	return []string{phone, who.ConnID, who.ClientAddr, phone[:max(1, len(phone)-PrefixOmits)], "", ""}
}

// take counts one send, or returns how long to wait and the name of the
// limit that waits longest if any limit is full.
func (l *limiter) take(phone string, who Requester, now time.Time) (retryAfter time.Duration, limit string, ok bool) {
	keys := limiterKeys(phone, who)
	l.mu.Lock()
	defer l.mu.Unlock()
	for i, c := range l.counters {
		if wait := c.retryAfter(keys[i], now); wait > retryAfter {
			retryAfter, limit = wait, limitNames[i]
		}
	}
	if retryAfter > 0 {
		return retryAfter, limit, false
	}
	for i, c := range l.counters {
		c.take(keys[i], now)
	}
	if l.ops++; l.ops%4096 == 0 {
		for _, c := range l.counters {
			c.forgetOld(now)
		}
	}
	return 0, "", true
}

// give undoes a take whose send never reached the provider.
func (l *limiter) give(phone string, who Requester) {
	keys := limiterKeys(phone, who)
	l.mu.Lock()
	defer l.mu.Unlock()
	for i, c := range l.counters {
		c.give(keys[i])
	}
}

// WindowLimiter allows Rate.N events per key in each window, for limits
// outside the send path (wrong API secrets, say).
type WindowLimiter struct {
	mu  sync.Mutex
	c   counter
	now func() time.Time
	ops int
}

// NewWindowLimiter returns a limiter; now may be nil.
func NewWindowLimiter(r Rate, now func() time.Time) *WindowLimiter {
	if now == nil {
		now = time.Now
	}
	return &WindowLimiter{c: counter{rate: r, windows: map[string]*window{}}, now: now}
}

// Take counts one event for key, or says how long to wait.
func (w *WindowLimiter) Take(key string) (time.Duration, bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	now := w.now()
	if wait := w.c.retryAfter(key, now); wait > 0 {
		return wait, false
	}
	w.c.take(key, now)
	if w.ops++; w.ops%1024 == 0 {
		w.c.forgetOld(now)
	}
	return 0, true
}

// Wait reports how long key must wait before Take can succeed, without
// counting anything.
func (w *WindowLimiter) Wait(key string) time.Duration {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.c.retryAfter(key, w.now())
}
