package verify

import (
	"sync"
	"time"
)

// Rate allows N events per window Per. N <= 0 means unlimited.
type Rate struct {
	N   int
	Per time.Duration
}

// Subject is what a limit may count by.
type Subject struct {
	Phone  string // E.164
	Conn   string // the connection's id
	Client string // the client's address, as one function decides it for every limit
}

// Limit is one named cap: Rate events per key, the key taken from the
// Subject.
type Limit struct {
	Name string
	Rate Rate
	Key  func(Subject) string
}

// Keys that limits count by.
func ByConn(s Subject) string   { return s.Conn }
func ByClient(s Subject) string { return s.Client }
func Everyone(Subject) string   { return "" }

// ByPrefix keys a number range: numbers that differ only in their last
// PrefixOmits digits share one key, so a sweep through a block is stopped.
func ByPrefix(s Subject) string { return s.Phone[:max(0, len(s.Phone)-PrefixOmits)] }

// PrefixOmits is how many final digits a number range leaves out.
const PrefixOmits = 3

// Limits caps how many codes may be sent, per key and for the whole
// deployment (the cost cap), how many wrong codes a number may take, and
// how many answers read from state one client may get.
type Limits struct {
	PerNumber     Rate // kept in the number's record
	PerConnection Rate
	PerClient     Rate // per client address
	PerPrefix     Rate // per block of 1,000 numbers
	PerMinute     int  // whole deployment
	PerHour       int  // whole deployment
	// WrongPerNumber is the wrong-code budget of one number across all its
	// codes, kept in its record: past it, no code works until the window
	// passes.
	WrongPerNumber Rate
	// LookupsPerClient caps the answers that read state without sending
	// (already verified, already requested, resume), per client address.
	LookupsPerClient Rate
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
		// -max-attempts x -max-sms-per-number: every code a person may be
		// sent in an hour may be mistyped to its end, and no more.
		WrongPerNumber:   Rate{N: 25, Per: time.Hour},
		LookupsPerClient: Rate{N: 60, Per: time.Hour},
	}
}

// Table lists the limits every sent code counts against in a
// RateLimiter, with the names an Observer hears. The per-number limit is
// not among them: it lives in the number's record.
func (l Limits) Table() []Limit {
	return append(l.PerKey(),
		Limit{"minute", Rate{N: l.PerMinute, Per: time.Minute}, Everyone},
		Limit{"hour", Rate{N: l.PerHour, Per: time.Hour}, Everyone})
}

// PerKey lists the limits of Table that count one connection, client or
// number range: what bounds codes that cost nothing (the cost caps do
// not).
func (l Limits) PerKey() []Limit {
	return []Limit{
		{"connection", l.PerConnection, ByConn},
		{"client", l.PerClient, ByClient},
		{"prefix", l.PerPrefix, ByPrefix},
	}
}

// RateLimiter counts events against a table of limits: what the Service
// needs of one. A Take counts against every limit or none, refusing with
// the longest wait and the name of that limit; Give undoes a Take; Wait
// reports what a Take would refuse with, counting nothing; Full lists up
// to max keys some limit holds full at now. *Limiter keeps its counts in
// memory; another implementation may share them between servers.
type RateLimiter interface {
	Take(s Subject, now time.Time) (wait time.Duration, limit string, ok bool)
	Give(s Subject)
	Wait(s Subject, now time.Time) (time.Duration, string)
	Full(now time.Time, max int) []Hit
}

var _ RateLimiter = (*Limiter)(nil)

// memoryLimiters is the default Deps.Limiters: every limiter in memory.
func memoryLimiters(limits ...Limit) RateLimiter { return NewLimiter(limits...) }

type window struct {
	start time.Time
	count int
}

// Limiter counts events against a table of limits in fixed windows, per
// key. A Take counts against every limit or none. It is safe for
// concurrent use; its memory is bounded by forgetting finished windows.
type Limiter struct {
	mu      sync.Mutex
	limits  []Limit
	windows []map[string]*window // one map per limit
	ops     int
}

// NewLimiter returns a limiter over limits.
func NewLimiter(limits ...Limit) *Limiter {
	l := &Limiter{limits: limits, windows: make([]map[string]*window, len(limits))}
	for i := range limits {
		l.windows[i] = map[string]*window{}
	}
	return l
}

// wait is how long key must wait under limit i; 0 when it may go now.
func (l *Limiter) wait(i int, key string, now time.Time) time.Duration {
	r := l.limits[i].Rate
	w := l.windows[i][key]
	if r.N <= 0 || w == nil || now.Sub(w.start) >= r.Per || w.count < r.N {
		return 0
	}
	return w.start.Add(r.Per).Sub(now)
}

// Wait reports how long s must wait and the limit that waits longest,
// counting nothing.
func (l *Limiter) Wait(s Subject, now time.Time) (time.Duration, string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.longestWait(s, now)
}

func (l *Limiter) longestWait(s Subject, now time.Time) (wait time.Duration, limit string) {
	for i, lim := range l.limits {
		if w := l.wait(i, lim.Key(s), now); w > wait {
			wait, limit = w, lim.Name
		}
	}
	return wait, limit
}

// Take counts one event for s, or, if any limit is full, counts nothing
// and returns how long to wait and the name of the limit that waits
// longest.
func (l *Limiter) Take(s Subject, now time.Time) (wait time.Duration, limit string, ok bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if wait, limit = l.longestWait(s, now); wait > 0 {
		return wait, limit, false
	}
	for i, lim := range l.limits {
		if lim.Rate.N > 0 {
			l.count(i, lim.Key(s), now)
		}
	}
	if l.ops++; l.ops%4096 == 0 {
		l.forgetOld(now)
	}
	return 0, "", true
}

func (l *Limiter) count(i int, key string, now time.Time) {
	w := l.windows[i][key]
	if w == nil {
		w = &window{}
		l.windows[i][key] = w
	}
	if now.Sub(w.start) >= l.limits[i].Rate.Per {
		w.start, w.count = now, 0
	}
	w.count++
}

// Give undoes a Take whose event did not happen after all.
func (l *Limiter) Give(s Subject) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for i, lim := range l.limits {
		if w := l.windows[i][lim.Key(s)]; w != nil && w.count > 0 {
			w.count--
		}
	}
}

func (l *Limiter) forgetOld(now time.Time) {
	for i, windows := range l.windows {
		for k, w := range windows {
			if now.Sub(w.start) >= l.limits[i].Rate.Per {
				delete(windows, k)
			}
		}
	}
}

// Hit is a key a limit holds full now.
type Hit struct {
	Limit, Key string
	Until      time.Time
}

// Full lists up to max keys that some limit holds full at now.
func (l *Limiter) Full(now time.Time, max int) []Hit {
	l.mu.Lock()
	defer l.mu.Unlock()
	var hits []Hit
	for i, lim := range l.limits {
		for key := range l.windows[i] {
			if len(hits) == max {
				return hits
			}
			if wait := l.wait(i, key, now); wait > 0 {
				hits = append(hits, Hit{Limit: lim.Name, Key: key, Until: now.Add(wait)})
			}
		}
	}
	return hits
}
