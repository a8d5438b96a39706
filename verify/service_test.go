package verify

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"
)

// memStore is an in-memory Store for rule tests.
type memStore struct {
	mu      sync.Mutex
	recs    map[string]Record
	failAll error // every call fails with it when set
}

func newMemStore() *memStore { return &memStore{recs: map[string]Record{}} }

func clone(r Record) Record {
	if r.Pending != nil {
		p := *r.Pending
		r.Pending = &p
	}
	return r
}

func (m *memStore) Update(_ context.Context, phone string, fn func(*Record) error) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.failAll != nil {
		return m.failAll
	}
	r := clone(m.recs[phone])
	if err := fn(&r); err != nil {
		return err
	}
	if r.Empty() {
		delete(m.recs, phone)
	} else {
		m.recs[phone] = r
	}
	return nil
}

func (m *memStore) Get(_ context.Context, phone string) (Record, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.failAll != nil {
		return Record{}, m.failAll
	}
	return clone(m.recs[phone]), nil
}

func (m *memStore) Expired(_ context.Context, now time.Time, max int) ([]string, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []string
	for phone, r := range m.recs {
		if r.Pending != nil && !now.Before(r.Pending.ExpiresAt) && len(out) < max {
			out = append(out, phone)
		}
	}
	sort.Strings(out)
	return out, nil
}

// fakeSender records messages; send, when set, decides the outcome.
type fakeSender struct {
	mu   sync.Mutex
	sent []Message
	send func(Message) error
}

func (f *fakeSender) Send(_ context.Context, m Message) error {
	if f.send != nil {
		if err := f.send(m); err != nil {
			return err
		}
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.sent = append(f.sent, m)
	return nil
}

var codeRe = regexp.MustCompile(`code is: (\d+)`)

func (f *fakeSender) lastCode(t *testing.T) string {
	t.Helper()
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.sent) == 0 {
		t.Fatal("no message sent")
	}
	m := codeRe.FindStringSubmatch(f.sent[len(f.sent)-1].Body)
	if m == nil {
		t.Fatalf("no code in %q", f.sent[len(f.sent)-1].Body)
	}
	return m[1]
}

func (f *fakeSender) count() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.sent)
}

type publication struct {
	phone   string
	ev      Event
	exclude string
}

type fakePub struct {
	mu  sync.Mutex
	got []publication
}

func (p *fakePub) Publish(phone string, ev Event, exclude string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.got = append(p.got, publication{phone, ev, exclude})
}

// clock is a settable time source.
type clock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *clock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.now }
func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

type harness struct {
	svc    *Service
	store  *memStore
	sender *fakeSender
	pub    *fakePub
	clock  *clock
}

const phone = "+14155552671"

var alice = Requester{ConnID: "c1", ClientAddr: "192.0.2.1"}
var bob = Requester{ConnID: "c2", ClientAddr: "192.0.2.2"}

func newHarness(t *testing.T, tweak ...func(*Config)) *harness {
	t.Helper()
	cfg := DefaultConfig()
	cfg.Limits = Limits{} // unlimited unless a test sets them
	for _, f := range tweak {
		f(&cfg)
	}
	h := &harness{store: newMemStore(), sender: &fakeSender{}, pub: &fakePub{},
		clock: &clock{now: time.Date(2026, 11, 22, 12, 0, 0, 0, time.UTC)}}
	svc, err := NewService(cfg, Deps{Store: h.store, Sender: h.sender, Pub: h.pub, Now: h.clock.Now})
	if err != nil {
		t.Fatal(err)
	}
	h.svc = svc
	return h
}

func wantEvent(t *testing.T, ev Event, name, reason string) {
	t.Helper()
	if ev.Name != name {
		t.Fatalf("event = %s %v, want %s", ev.Name, ev.Data, name)
	}
	if reason != "" && ev.Data["reason"] != reason {
		t.Fatalf("reason = %v (%v), want %s", ev.Data["reason"], ev.Data, reason)
	}
}

func (h *harness) register(t *testing.T, who Requester) Event {
	t.Helper()
	_, ev := h.svc.Register(context.Background(), who, phone, false)
	return ev
}

func (h *harness) verify(who Requester, code string) Event {
	return h.svc.Verify(context.Background(), who, phone, code)
}

func wrongCode(right string) string {
	if right[0] == '9' {
		return "0" + right[1:]
	}
	return string(right[0]+1) + right[1:]
}

func TestNormalizePhoneAcceptsCommonFormsAndRejectsJunk(t *testing.T) {
	for _, in := range []string{"+14155552671", "(415) 555-2671", "415.555.2671", "+1 415 555 2671", " 1-415-555-2671 "} {
		got, err := NormalizePhone(in, "US")
		if err != nil || got != phone {
			t.Errorf("NormalizePhone(%q) = %q, %v; want %s", in, got, err, phone)
		}
	}
	if got, _ := NormalizePhone("+44 20 7946 0958", "US"); got != "+442079460958" {
		t.Errorf("UK number = %q", got)
	}
	for _, in := range []string{"", "12345", "hello", "+1", "+999 123", strings.Repeat("9", 200), "+1415555267\x00"} {
		if got, err := NormalizePhone(in, "US"); !errors.Is(err, ErrInvalidPhone) {
			t.Errorf("NormalizePhone(%q) = %q, %v; want ErrInvalidPhone", in, got, err)
		}
	}
}

func TestFullFlowVerifiesAndTellsOtherConnectionsWithoutToken(t *testing.T) {
	h := newHarness(t)
	p, ev := h.svc.Register(context.Background(), alice, "(415) 555-2671", false)
	if p != phone {
		t.Fatalf("normalised to %q", p)
	}
	wantEvent(t, ev, EventCodeGenerated, "")
	if ev.Data["expires_in"] != 600 || ev.Data["resend_in"] != 30 || ev.Data["code_length"] != 6 {
		t.Fatalf("code_generated data = %v", ev.Data)
	}
	code := h.sender.lastCode(t)
	if len(code) != 6 {
		t.Fatalf("code %q", code)
	}
	ev = h.verify(alice, code)
	wantEvent(t, ev, EventVerified, "")
	if tok, _ := ev.Data["token"].(string); tok == "" {
		t.Fatal("requester got no token")
	}
	if len(h.pub.got) != 1 || h.pub.got[0].ev.Name != EventVerified || h.pub.got[0].exclude != alice.ConnID {
		t.Fatalf("publications = %+v", h.pub.got)
	}
	if _, has := h.pub.got[0].ev.Data["token"]; has {
		t.Fatal("token was broadcast")
	}
	rec, _ := h.store.Get(context.Background(), phone)
	if !rec.Verified() || rec.Pending != nil {
		t.Fatalf("stored %+v", rec)
	}
	// Invalid after success.
	wantEvent(t, h.verify(alice, code), EventUpdate, ReasonNotRequested)
}

func TestCodesAreFreshPerVerificationAndHonourLength(t *testing.T) {
	h := newHarness(t, func(c *Config) { c.CodeLength = 8; c.ResendAfter = 0 })
	seen := map[string]bool{}
	for range 20 {
		wantEvent(t, h.register(t, alice), EventCodeGenerated, "")
		code := h.sender.lastCode(t)
		if len(code) != 8 {
			t.Fatalf("code %q, want 8 digits", code)
		}
		seen[code] = true
	}
	if len(seen) < 18 {
		t.Fatalf("only %d distinct codes in 20 sends: secrets are not fresh", len(seen))
	}
}

func TestInvalidPhoneStoresAndSendsNothing(t *testing.T) {
	h := newHarness(t)
	for _, in := range []string{"12345", "not a number", "+1 555"} {
		p, ev := h.svc.Register(context.Background(), alice, in, false)
		wantEvent(t, ev, EventUpdate, ReasonInvalidPhone)
		if p != "" {
			t.Fatalf("phone %q returned for invalid input", p)
		}
		wantEvent(t, h.svc.Verify(context.Background(), alice, in, "123456"), EventUpdate, ReasonInvalidPhone)
	}
	if h.sender.count() != 0 || len(h.store.recs) != 0 {
		t.Fatal("something was sent or stored")
	}
}

func TestAlreadyVerifiedUnlessReverify(t *testing.T) {
	h := newHarness(t)
	h.register(t, alice)
	h.verify(alice, h.sender.lastCode(t))
	ev := h.register(t, alice)
	wantEvent(t, ev, EventUpdate, ReasonAlreadyVerified)
	if ev.Data["message"] != "You have already verified +14155552671!" {
		t.Fatalf("message %q", ev.Data["message"])
	}
	_, ev = h.svc.Register(context.Background(), alice, phone, true)
	wantEvent(t, ev, EventCodeGenerated, "")
	if h.sender.count() != 2 {
		t.Fatalf("sent %d", h.sender.count())
	}
}

func TestResendTooSoonThenReplacesOldCode(t *testing.T) {
	h := newHarness(t)
	h.register(t, alice)
	first := h.sender.lastCode(t)
	h.clock.Advance(10 * time.Second)
	ev := h.register(t, alice)
	wantEvent(t, ev, EventUpdate, ReasonAlreadyRequested)
	if ev.Data["resend_in"] != 20 || ev.Data["expires_in"] != 590 {
		t.Fatalf("already_requested data %v", ev.Data)
	}
	if h.sender.count() != 1 {
		t.Fatal("a second text was sent too soon")
	}
	h.clock.Advance(20 * time.Second)
	wantEvent(t, h.register(t, alice), EventCodeGenerated, "")
	second := h.sender.lastCode(t)
	if first == second {
		t.Skip("the two random codes collided; nothing to tell apart")
	}
	wantEvent(t, h.verify(alice, first), EventUpdate, ReasonWrongCode)
	wantEvent(t, h.verify(alice, second), EventVerified, "")
}

func TestWrongCodesCountDownThenVoidTheCode(t *testing.T) {
	h := newHarness(t, func(c *Config) { c.MaxAttempts = 3 })
	h.register(t, alice)
	code := h.sender.lastCode(t)
	for left := 2; left >= 1; left-- {
		ev := h.verify(alice, wrongCode(code))
		wantEvent(t, ev, EventUpdate, ReasonWrongCode)
		if ev.Data["attempts_left"] != left {
			t.Fatalf("attempts_left = %v, want %d", ev.Data["attempts_left"], left)
		}
	}
	wantEvent(t, h.verify(alice, "abc"), EventReset, ReasonTooManyAttempts)
	if len(h.pub.got) != 1 || h.pub.got[0].ev.Data["reason"] != ReasonTooManyAttempts {
		t.Fatalf("reset not published: %+v", h.pub.got)
	}
	wantEvent(t, h.verify(alice, code), EventUpdate, ReasonNotRequested)
}

func TestExpiredCodeIsRefusedAndSweptWithAPush(t *testing.T) {
	h := newHarness(t)
	h.register(t, alice)
	code := h.sender.lastCode(t)
	h.clock.Advance(10 * time.Minute)
	wantEvent(t, h.verify(alice, code), EventReset, ReasonExpired)

	h.register(t, alice)
	h.clock.Advance(10*time.Minute + time.Second)
	n, err := h.svc.SweepExpired(context.Background())
	if err != nil || n != 1 {
		t.Fatalf("swept %d, %v", n, err)
	}
	last := h.pub.got[len(h.pub.got)-1]
	if last.ev.Name != EventReset || last.ev.Data["reason"] != ReasonExpired || last.exclude != "" {
		t.Fatalf("sweep published %+v", last)
	}
	wantEvent(t, h.verify(alice, code), EventUpdate, ReasonNotRequested)
}

func TestNotRequested(t *testing.T) {
	h := newHarness(t)
	wantEvent(t, h.verify(alice, "123456"), EventUpdate, ReasonNotRequested)
}

func TestProviderRejectingTheNumberLeavesNothingPending(t *testing.T) {
	h := newHarness(t)
	h.sender.send = func(Message) error { return errors.Join(errors.New("21211"), ErrRejectedNumber) }
	wantEvent(t, h.register(t, alice), EventUpdate, ReasonInvalidPhone)
	if len(h.store.recs) != 0 {
		t.Fatalf("left %v", h.store.recs)
	}
	h.sender.send = nil
	wantEvent(t, h.register(t, alice), EventCodeGenerated, "")
}

func TestProviderFailureLeavesNothingHalfDone(t *testing.T) {
	h := newHarness(t, func(c *Config) { c.Limits.PerNumber = Rate{N: 1, Per: time.Hour} })
	h.sender.send = func(Message) error { return errors.New("503") }
	wantEvent(t, h.register(t, alice), EventUpdate, ReasonSendFailed)
	if len(h.store.recs) != 0 {
		t.Fatalf("left %v", h.store.recs)
	}
	// The failed send did not use up the number's only slot.
	h.sender.send = nil
	wantEvent(t, h.register(t, alice), EventCodeGenerated, "")
	code := h.sender.lastCode(t)

	// A failed resend puts the code that did arrive back.
	h.clock.Advance(time.Minute)
	h.sender.send = func(Message) error { return errors.New("timeout") }
	_, ev := h.svc.Register(context.Background(), bob, phone, false)
	wantEvent(t, ev, EventUpdate, ReasonRateLimited)
	h.svc.limits = newLimiter(Limits{})
	_, ev = h.svc.Register(context.Background(), bob, phone, false)
	wantEvent(t, ev, EventUpdate, ReasonSendFailed)
	wantEvent(t, h.verify(alice, code), EventVerified, "")
}

func TestStoreFailureSendsNoText(t *testing.T) {
	h := newHarness(t)
	h.store.failAll = errors.New("disk full")
	wantEvent(t, h.register(t, alice), EventUpdate, ReasonSendFailed)
	wantEvent(t, h.verify(alice, "123456"), EventUpdate, ReasonSendFailed)
	if h.sender.count() != 0 {
		t.Fatal("a text was sent for a code that was never stored")
	}
}

func TestRateLimits(t *testing.T) {
	numbers := []string{"+14155552671", "+14155552672", "+14155552673", "+14155552674"}
	cases := []struct {
		name   string
		limits Limits
		who    func(i int) Requester
		phone  func(i int) string
	}{
		{"per number", Limits{PerNumber: Rate{N: 2, Per: time.Hour}},
			func(i int) Requester {
				return Requester{ConnID: string(rune('a' + i)), ClientAddr: string(rune('a' + i))}
			},
			func(int) string { return numbers[0] }},
		{"per connection", Limits{PerConnection: Rate{N: 2, Per: time.Hour}},
			func(int) Requester { return alice }, func(i int) string { return numbers[i] }},
		{"per client address", Limits{PerClient: Rate{N: 2, Per: time.Hour}},
			func(i int) Requester { return Requester{ConnID: string(rune('a' + i)), ClientAddr: "192.0.2.9"} },
			func(i int) string { return numbers[i] }},
		{"per block of 1,000 numbers", Limits{PerPrefix: Rate{N: 2, Per: time.Hour}},
			func(i int) Requester {
				return Requester{ConnID: string(rune('a' + i)), ClientAddr: string(rune('a' + i))}
			},
			func(i int) string { return numbers[i] }},
		{"whole deployment per minute", Limits{PerMinute: 2},
			func(i int) Requester {
				return Requester{ConnID: string(rune('a' + i)), ClientAddr: string(rune('a' + i))}
			},
			func(i int) string { return numbers[i] }},
		{"whole deployment per hour", Limits{PerHour: 2},
			func(i int) Requester {
				return Requester{ConnID: string(rune('a' + i)), ClientAddr: string(rune('a' + i))}
			},
			func(i int) string { return numbers[i] }},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t, func(c *Config) { c.Limits = tc.limits; c.ResendAfter = 0 })
			for i := range 2 {
				_, ev := h.svc.Register(context.Background(), tc.who(i), tc.phone(i), false)
				wantEvent(t, ev, EventCodeGenerated, "")
			}
			_, ev := h.svc.Register(context.Background(), tc.who(2), tc.phone(2), false)
			wantEvent(t, ev, EventUpdate, ReasonRateLimited)
			if ra, _ := ev.Data["retry_after"].(int); ra <= 0 {
				t.Fatalf("retry_after = %v", ev.Data["retry_after"])
			}
			if h.sender.count() != 2 {
				t.Fatalf("sent %d, want 2", h.sender.count())
			}
			h.clock.Advance(time.Hour)
			_, ev = h.svc.Register(context.Background(), tc.who(3), tc.phone(3), false)
			wantEvent(t, ev, EventCodeGenerated, "")
		})
	}
}

func TestRefusalsDoNotUseUpRateLimits(t *testing.T) {
	h := newHarness(t, func(c *Config) { c.Limits.PerConnection = Rate{N: 1, Per: time.Hour} })
	h.register(t, alice)
	for range 5 {
		wantEvent(t, h.register(t, alice), EventUpdate, ReasonAlreadyRequested)
	}
	h.verify(alice, h.sender.lastCode(t))
	if h.sender.count() != 1 {
		t.Fatal("refusals sent texts")
	}
}

func TestWebOTPLineNamesTheHost(t *testing.T) {
	h := newHarness(t, func(c *Config) { c.WebOTPHost = "verify.example.com" })
	h.register(t, alice)
	code := h.sender.lastCode(t)
	want := "Your verification code is: " + code + "\n\n@verify.example.com #" + code
	if got := h.sender.sent[0].Body; got != want {
		t.Fatalf("body %q, want %q", got, want)
	}
}

func TestResumeReportsStateWithoutSending(t *testing.T) {
	h := newHarness(t)
	_, ev := h.svc.Resume(context.Background(), phone)
	wantEvent(t, ev, EventReset, ReasonNotRequested)
	h.register(t, alice)
	h.clock.Advance(5 * time.Second)
	_, ev = h.svc.Resume(context.Background(), phone)
	wantEvent(t, ev, EventUpdate, ReasonCodePending)
	if ev.Data["resend_in"] != 25 || ev.Data["code_length"] != 6 {
		t.Fatalf("code_pending data %v", ev.Data)
	}
	h.verify(alice, h.sender.lastCode(t))
	_, ev = h.svc.Resume(context.Background(), phone)
	wantEvent(t, ev, EventUpdate, ReasonAlreadyVerified)
	if h.sender.count() != 1 {
		t.Fatal("resume sent a text")
	}
}

func TestConfigValidation(t *testing.T) {
	for _, tweak := range []func(*Config){
		func(c *Config) { c.CodeLength = 3 },
		func(c *Config) { c.CodeLength = 11 },
		func(c *Config) { c.CodeTTL = 0 },
		func(c *Config) { c.MaxAttempts = 0 },
		func(c *Config) { c.ResendAfter = -time.Second },
	} {
		cfg := DefaultConfig()
		tweak(&cfg)
		if cfg.Validate() == nil {
			t.Errorf("config %+v accepted", cfg)
		}
	}
}

// observed records what the rules report for metrics.
type observed struct {
	mu       sync.Mutex
	verified []time.Duration
	limits   []string
}

func (o *observed) Verified(d time.Duration) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.verified = append(o.verified, d)
}
func (o *observed) RateLimited(l string) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.limits = append(o.limits, l)
}

func TestNumberRangeSweepIsStoppedButOtherRangesAreNot(t *testing.T) {
	obs := &observed{}
	h := newHarness(t, func(c *Config) { c.Limits.PerPrefix = Rate{N: 5, Per: time.Hour} })
	svc, err := NewService(h.svc.cfg, Deps{Store: h.store, Sender: h.sender, Pub: h.pub, Now: h.clock.Now, Observe: obs})
	if err != nil {
		t.Fatal(err)
	}
	// A script walks +1 415 555 2000, 2001, ... each from a fresh
	// connection and address, so only the range limit can see it.
	refused := 0
	for i := range 50 {
		who := Requester{ConnID: fmt.Sprint("c", i), ClientAddr: fmt.Sprint("198.51.100.", i)}
		_, ev := svc.Register(context.Background(), who, fmt.Sprintf("+1415555%04d", 2000+i), false)
		if ev.Data["reason"] == ReasonRateLimited {
			refused++
		}
	}
	if h.sender.count() != 5 || refused != 45 {
		t.Fatalf("sweep of 50 numbers: %d texts, %d refused; want 5 and 45", h.sender.count(), refused)
	}
	if len(obs.limits) != 45 || obs.limits[0] != "prefix" {
		t.Fatalf("observed limits %v, want 45 x prefix", obs.limits)
	}
	_, ev := svc.Register(context.Background(), alice, "+14155553000", false)
	wantEvent(t, ev, EventCodeGenerated, "")
}

func TestCountriesOutsideTheListGetNoText(t *testing.T) {
	h := newHarness(t, func(c *Config) {
		c.Countries = []string{"US", "CA"}
		c.TestNumbers = map[string]string{"+15555550100": "123456"}
	})
	for _, p := range []string{"+442071838750", "+33612345678", "+61412345678"} {
		_, ev := h.svc.Register(context.Background(), alice, p, false)
		wantEvent(t, ev, EventUpdate, ReasonCountryNotAllowed)
		if ev.Data["country"] == "" || ev.Data["phone_number"] != p {
			t.Fatalf("answer lacks country or number: %v", ev.Data)
		}
	}
	if h.sender.count() != 0 || len(h.store.recs) != 0 {
		t.Fatalf("%d texts, %d records for refused countries", h.sender.count(), len(h.store.recs))
	}
	for _, p := range []string{"+14155552671", "+16135550123", "+15555550100"} {
		_, ev := h.svc.Register(context.Background(), alice, p, false)
		wantEvent(t, ev, EventCodeGenerated, "")
	}
}

func TestBruteForceEndsAtMaxAttemptsForEveryCode(t *testing.T) {
	h := newHarness(t, func(c *Config) { c.MaxAttempts = 5 })
	for round := range 4 {
		wantEvent(t, h.register(t, alice), EventCodeGenerated, "")
		right := h.sender.lastCode(t)
		tried := 0
		for guess := 0; ; guess++ {
			g := fmt.Sprintf("%06d", guess)
			if g == right {
				continue
			}
			tried++
			ev := h.verify(alice, g)
			if ev.Name == EventReset {
				wantEvent(t, ev, EventReset, ReasonTooManyAttempts)
				break
			}
			wantEvent(t, ev, EventUpdate, ReasonWrongCode)
		}
		if tried != 5 {
			t.Fatalf("round %d: the code died after %d guesses, want 5", round, tried)
		}
		wantEvent(t, h.verify(alice, right), EventUpdate, ReasonNotRequested)
		h.clock.Advance(h.svc.cfg.ResendAfter)
	}
}

func TestObserverHearsVerificationTime(t *testing.T) {
	obs := &observed{}
	h := newHarness(t)
	svc, err := NewService(h.svc.cfg, Deps{Store: h.store, Sender: h.sender, Pub: h.pub, Now: h.clock.Now, Observe: obs})
	if err != nil {
		t.Fatal(err)
	}
	svc.Register(context.Background(), alice, phone, false)
	h.clock.Advance(42 * time.Second)
	wantEvent(t, svc.Verify(context.Background(), alice, phone, h.sender.lastCode(t)), EventVerified, "")
	if len(obs.verified) != 1 || obs.verified[0] != 42*time.Second {
		t.Fatalf("observed %v, want [42s]", obs.verified)
	}
}
