// Package stats keeps what the operator's live page draws: codes sent,
// numbers verified and deliveries failed per minute over the last hour,
// failures by country and provider error code, and spend against the cost
// caps. It holds counts only, never a number.
package stats

import (
	"sort"
	"sync"
	"time"
)

// window is how far back the board remembers, a minute per slot.
const window = 60

// Board counts events by minute. It is safe for concurrent use.
type Board struct {
	mu       sync.Mutex
	now      func() time.Time
	minutes  [window]minute
	failures map[failure]int // over the window
	caps     Caps
}

type minute struct {
	at                     int64 // unix minute this slot counts, 0 for unused
	sent, verified, failed int
	failures               map[failure]int
}

type failure struct{ country, code string }

// Caps are the deployment-wide send caps (0: none).
type Caps struct{ PerMinute, PerHour int }

// New returns an empty board; now may be nil for the wall clock.
func New(caps Caps, now func() time.Time) *Board {
	if now == nil {
		now = time.Now
	}
	return &Board{now: now, caps: caps}
}

// slot is the current minute's counts, under mu.
func (b *Board) slot() *minute {
	at := b.now().Unix() / 60
	m := &b.minutes[at%window]
	if m.at != at {
		*m = minute{at: at}
	}
	return m
}

// Sent counts a code sent (a text or a call).
func (b *Board) Sent() {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.slot().sent++
}

// Verified counts a verified number.
func (b *Board) Verified() {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.slot().verified++
}

// Failed counts a send or delivery that failed, by the number's country
// and the provider's error code ("" when it gave none).
func (b *Board) Failed(country, code string) {
	if country == "" {
		country = "??"
	}
	if code == "" {
		code = "none"
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	m := b.slot()
	m.failed++
	if m.failures == nil {
		m.failures = map[failure]int{}
	}
	m.failures[failure{country, code}]++
}

// Snapshot is the board as the admin page reads it (JSON).
type Snapshot struct {
	At         time.Time      `json:"at"`
	Minutes    []MinuteCounts `json:"minutes"` // oldest first, the last hour
	Sent       int            `json:"sent"`    // over the last hour
	Verified   int            `json:"verified"`
	Failed     int            `json:"failed"`
	Conversion float64        `json:"conversion"` // verified / sent over the last hour, 0 when none sent
	Failures   []FailureCount `json:"failures"`   // most first
	Spend      Spend          `json:"spend"`
	Limited    []Limited      `json:"limited"`
}

// MinuteCounts is one minute's counts.
type MinuteCounts struct {
	Start    time.Time `json:"start"`
	Sent     int       `json:"sent"`
	Verified int       `json:"verified"`
	Failed   int       `json:"failed"`
}

// FailureCount is how many sends or deliveries failed for one country
// with one error code.
type FailureCount struct {
	Country string `json:"country"`
	Code    string `json:"code"`
	Count   int    `json:"count"`
}

// Spend is the texts and calls sent against the caps.
type Spend struct {
	Minute Use `json:"minute"`
	Hour   Use `json:"hour"`
}

// Use is a count against its cap (0: none).
type Use struct {
	Used int `json:"used"`
	Cap  int `json:"cap"`
}

// Limited is a key a rate limit holds full now: a client address, a
// number range, a connection, or everyone (a cost cap).
type Limited struct {
	Limit string    `json:"limit"`
	Key   string    `json:"key"`
	Until time.Time `json:"until"`
}

// Snapshot reads the board; limited is filled by the caller.
func (b *Board) Snapshot() Snapshot {
	b.mu.Lock()
	defer b.mu.Unlock()
	now := b.now()
	current := now.Unix() / 60
	s := Snapshot{At: now.UTC(), Minutes: make([]MinuteCounts, 0, window), Limited: []Limited{}}
	failures := map[failure]int{}
	for at := current - window + 1; at <= current; at++ {
		m := b.minutes[at%window]
		c := MinuteCounts{Start: time.Unix(at*60, 0).UTC()}
		if m.at == at {
			c.Sent, c.Verified, c.Failed = m.sent, m.verified, m.failed
			for f, n := range m.failures {
				failures[f] += n
			}
		}
		s.Minutes = append(s.Minutes, c)
		s.Sent, s.Verified, s.Failed = s.Sent+c.Sent, s.Verified+c.Verified, s.Failed+c.Failed
	}
	if s.Sent > 0 {
		s.Conversion = min(1, float64(s.Verified)/float64(s.Sent))
	}
	s.Failures = sortedFailures(failures)
	s.Spend = Spend{Minute: Use{s.Minutes[window-1].Sent, b.caps.PerMinute}, Hour: Use{s.Sent, b.caps.PerHour}}
	return s
}

func sortedFailures(failures map[failure]int) []FailureCount {
	out := make([]FailureCount, 0, len(failures))
	for f, n := range failures {
		out = append(out, FailureCount{f.country, f.code, n})
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Count != out[j].Count {
			return out[i].Count > out[j].Count
		}
		return out[i].Country+out[i].Code < out[j].Country+out[j].Code
	})
	return out
}
