package verify

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"
)

// Hardening: the sweeper keeps up with any backlog and forgets passed
// windows, and the number cache keys on the compact form within a byte
// bound.

// sweepNumber is the i-th of many distinct valid US numbers, spread over
// area codes so that no two share a block or a number.
func sweepNumber(i int) string {
	areas := []int{415, 212, 312, 617, 206, 303, 512, 702}
	return fmt.Sprintf("+1%d555%04d", areas[i%len(areas)], 1000+i/len(areas))
}

func TestOneSweepRemovesAndPushesAWholeBacklogOfExpiredCodes(t *testing.T) {
	const n = 5000 // far more than one batch of the store's Expired
	h := newHarness(t)
	ctx := context.Background()
	for i := range n {
		who := Requester{ConnID: fmt.Sprint("c", i), ClientAddr: "192.0.2.1"}
		if o := mustRegister(t, h.svc, who, Registration{Phone: sweepNumber(i)}); o.Kind != CodeSent {
			t.Fatalf("register %s: %v", sweepNumber(i), o.Kind)
		}
	}
	if len(h.store.recs) != n {
		t.Fatalf("%d records stored, want %d", len(h.store.recs), n)
	}
	// Every code expires at the same instant; one sweep after it.
	h.clock.Advance(h.svc.cfg.CodeTTL)
	removed, err := h.svc.SweepExpired(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if removed != n {
		t.Fatalf("one sweep removed %d of %d expired codes", removed, n)
	}
	if left := len(h.store.recs); left != 0 { // nothing else was in the records
		t.Fatalf("%d records left after the sweep, want none", left)
	}
	pushed := map[string]bool{}
	for _, p := range h.pub.got {
		if p.o.Kind != Expired || p.o.Phone != p.phone || p.exclude != "" {
			t.Fatalf("sweep published %+v, want Expired to every connection on the number", p)
		}
		pushed[p.phone] = true
	}
	if len(pushed) != n || len(h.pub.got) != n {
		t.Fatalf("%d Expired publications for %d numbers, want one for each of %d", len(h.pub.got), len(pushed), n)
	}
	for i := range n {
		if !pushed[sweepNumber(i)] {
			t.Fatalf("no Expired push for %s", sweepNumber(i))
		}
	}
	// Nothing is left for the next sweep.
	if again, err := h.svc.SweepExpired(ctx); err != nil || again != 0 {
		t.Fatalf("second sweep removed %d, %v; want 0", again, err)
	}
}

func TestTheSweeperForgetsAPassedWrongCodeWindow(t *testing.T) {
	h := newHarness(t, func(c *Config) { c.Limits.WrongPerNumber = Rate{N: 10, Per: time.Hour} })
	ctx := context.Background()
	h.register(t, alice)
	wantKind(t, h.verify(t, alice, wrongCode(h.sms.lastCode(t))), WrongCode)

	// The code expires; the record keeps the wrong-code window alone.
	h.clock.Advance(h.svc.cfg.CodeTTL)
	if n, err := h.svc.SweepExpired(ctx); err != nil || n != 1 {
		t.Fatalf("sweep at expiry removed %d, %v; want 1", n, err)
	}
	rec, _ := h.store.Get(ctx, phone)
	if rec.Pending != nil || rec.Wrong.Count != 1 || rec.Sends.Count != 0 || rec.Verified() {
		t.Fatalf("after expiry the record is %+v, want only the wrong-code window", rec)
	}
	// Before the window passes a sweep keeps it.
	h.svc.SweepExpired(ctx)
	if _, ok := h.store.recs[phone]; !ok {
		t.Fatal("a record whose wrong-code window is still open was deleted")
	}

	h.clock.Advance(time.Hour)
	n, err := h.svc.SweepExpired(ctx)
	if err != nil || n != 0 {
		t.Fatalf("sweep of a passed window: %d removed, %v; want 0 codes (only the window goes)", n, err)
	}
	if rec, ok := h.store.recs[phone]; ok {
		t.Fatalf("a record holding only a passed wrong-code window was kept: %+v", rec)
	}
	if got := len(h.pub.got); got != 1 {
		t.Fatalf("%d publications, want only the one Expired", got)
	}
}

func TestTheSweeperForgetsAPassedSendWindow(t *testing.T) {
	h := newHarness(t, func(c *Config) { c.Limits.PerNumber = Rate{N: 5, Per: time.Hour} })
	ctx := context.Background()
	h.register(t, alice)
	h.clock.Advance(h.svc.cfg.CodeTTL)
	if n, err := h.svc.SweepExpired(ctx); err != nil || n != 1 {
		t.Fatalf("sweep at expiry removed %d, %v; want 1", n, err)
	}
	rec, _ := h.store.Get(ctx, phone)
	if rec.Pending != nil || rec.Sends.Count != 1 || rec.Wrong.Count != 0 || rec.Verified() {
		t.Fatalf("after expiry the record is %+v, want only the send window", rec)
	}

	h.clock.Advance(time.Hour)
	if n, err := h.svc.SweepExpired(ctx); err != nil || n != 0 {
		t.Fatalf("sweep of a passed window: %d removed, %v; want 0", n, err)
	}
	if rec, ok := h.store.recs[phone]; ok {
		t.Fatalf("a record holding only a passed send window was kept: %+v", rec)
	}
}

// TestRecordsWithPassedWindowsDoNotPileUp: many numbers each leave only a
// passed window behind; the sweeper leaves no record and lists nothing
// afterwards.
func TestRecordsWithPassedWindowsDoNotPileUp(t *testing.T) {
	const n = 200 // under one batch: a sweep that cannot settle a record would list it forever
	h := newHarness(t, func(c *Config) {
		c.Limits.PerNumber = Rate{N: 5, Per: time.Hour}
		c.Limits.WrongPerNumber = Rate{N: 10, Per: 2 * time.Hour}
	})
	ctx := context.Background()
	for i := range n {
		p := sweepNumber(i)
		mustRegister(t, h.svc, alice, Registration{Phone: p})
		if i%2 == 0 {
			wantKind(t, mustVerify(t, h.svc, alice, p, "0000000"), WrongCode) // 7 digits: never right
		}
	}
	h.clock.Advance(3 * time.Hour)
	removed, err := h.svc.SweepExpired(ctx)
	if err != nil || removed != n {
		t.Fatalf("sweep removed %d codes, %v; want %d", removed, err, n)
	}
	if left := len(h.store.recs); left != 0 {
		t.Fatalf("%d records with only passed windows were kept", left)
	}
	if listed, _ := h.store.Expired(ctx, h.clock.Now(), 1); len(listed) != 0 {
		t.Fatalf("the store still lists %v for the sweeper", listed)
	}
}

func TestTheNumberCacheKeysOnTheCompactForm(t *testing.T) {
	c := newNumberCache(1 << 20)
	for _, in := range []string{"(415) 555-2671", "415-555-2671", "415 555 2671", " 415.555.2671 "} {
		n, err := c.parse(in, "US")
		if err != nil || n.e164 != phone || n.country != "US" {
			t.Fatalf("parse(%q) = %+v, %v; want %s in US", in, n, err, phone)
		}
	}
	if len(c.parsed) != 1 {
		t.Fatalf("forms that differ only in separators left %d entries, want 1: %v", len(c.parsed), c.parsed)
	}
}

// TestTheNumberCacheKeepsLettersApart: inputs that differ in letters (a
// vanity number) are different numbers; the cache must answer each with
// its own parse, however often and in whatever order they are asked.
func TestTheNumberCacheKeepsLettersApart(t *testing.T) {
	pairs := [][2]string{
		{"1-800-FLOWERS", "1-800-GARDENS"},
		{"+1 800 FLOWERS", "+1 800 GARDENS"},
		{"1-800-CALL-ATT", "1-800-CALL-NOW"},
	}
	tested := 0
	for _, pair := range pairs {
		a, errA := parsePhone(pair[0], "US")
		b, errB := parsePhone(pair[1], "US")
		if errA != nil || errB != nil || a.e164 == b.e164 {
			continue // not two distinct valid numbers: nothing would be cached
		}
		tested++
		t.Logf("%q is %s, %q is %s", pair[0], a.e164, pair[1], b.e164)
		c := newNumberCache(1 << 20)
		for round := range 3 {
			for i, in := range pair {
				want := []parsedPhone{a, b}[i]
				got, err := c.parse(in, "US")
				if err != nil || got != want {
					t.Fatalf("round %d: parse(%q) = %+v, %v; want %+v", round, in, got, err, want)
				}
			}
		}
		if len(c.parsed) != 2 {
			t.Fatalf("%q and %q share a cache entry: %v", pair[0], pair[1], c.parsed)
		}
	}
	if tested == 0 {
		t.Fatal("no pair of vanity numbers parsed as two distinct valid numbers")
	}
}

func TestTheNumberCacheStaysWithinItsBytes(t *testing.T) {
	const maxBytes = 4 << 10 // a few dozen entries
	c := newNumberCache(maxBytes)
	entries := 0
	for i := range 3000 {
		in := sweepNumber(i)
		if i%3 == 1 { // a longer written form costs more bytes
			in = "+1 (" + in[2:5] + ") " + in[5:8] + "-" + in[8:]
		}
		if _, err := c.parse(in, "US"); err != nil {
			t.Fatalf("parse(%q): %v", in, err)
		}
		// Count what the map really holds, not only what the cache says.
		held := 0
		for k, n := range c.parsed {
			held += len(k) + len(n.e164) + len(n.country) + entryOverhead
		}
		if held > maxBytes || c.bytes > maxBytes || c.bytes != held {
			t.Fatalf("after %d numbers the cache holds %d bytes (counts %d), bound %d", i+1, held, c.bytes, maxBytes)
		}
		entries = max(entries, len(c.parsed))
	}
	if entries < 2 {
		t.Fatalf("the cache never held more than %d entries: it caches nothing", entries)
	}
	// The service's own cache has its bound too.
	h := newHarness(t)
	if h.svc.numbers.maxBytes != numberCacheBytes || numberCacheBytes <= 0 {
		t.Fatalf("service cache bound %d", h.svc.numbers.maxBytes)
	}
}

// TestAProvidersErrorQuotingTheNumberIsLoggedMasked: Twilio's messages
// name the number; the log line must not.
func TestAProvidersErrorQuotingTheNumberIsLoggedMasked(t *testing.T) {
	var logs strings.Builder
	h := newHarness(t)
	d := h.deps()
	d.Log = slog.New(slog.NewTextHandler(&logs, nil))
	svc, err := NewService(h.svc.cfg, d)
	if err != nil {
		t.Fatal(err)
	}
	for _, fail := range []error{
		fmt.Errorf("%w: The 'To' number %s is not a valid phone number", ErrRejectedNumber, phone),
		fmt.Errorf("%w: 400 for %s", ErrNotSent, phone),
		fmt.Errorf("timeout sending to whatsapp:%s", phone),
	} {
		h.sms.deliver = func(Delivery) error { return fail }
		mustRegister(t, svc, alice, Registration{Phone: phone, Reverify: true})
	}
	// The confirmation text's failure is logged the same way.
	svc.confirm = failingConfirmer{fmt.Errorf("The 'To' number %s is unreachable", phone)}
	h.sms.deliver = nil
	mustRegister(t, svc, alice, Registration{Phone: phone, Reverify: true})
	mustVerify(t, svc, alice, phone, h.sms.lastCode(t))
	svc.Wait()
	if strings.Contains(logs.String(), phone) || !strings.Contains(logs.String(), MaskPhone(phone)) {
		t.Fatalf("logs hold the full number:\n%s", logs.String())
	}
}

type failingConfirmer struct{ err error }

func (f failingConfirmer) Confirm(context.Context, string, string) error { return f.err }

func TestLimitedListsTheKeysHeldFull(t *testing.T) {
	h := newHarness(t, func(c *Config) {
		c.Limits.PerClient = Rate{N: 1, Per: time.Hour}
		c.Limits.PerPrefix = Rate{N: 5, Per: time.Hour}
	})
	h.register(t, alice)
	hits := h.svc.Limited(10)
	if len(hits) != 1 || hits[0].Limit != "client" || hits[0].Key != alice.ClientAddr || !hits[0].Until.After(h.clock.Now()) {
		t.Fatalf("Limited = %+v, want alice's address", hits)
	}
	if got := CountryOf("+442071838750"); got != "GB" {
		t.Fatalf("CountryOf = %q", got)
	}
}
