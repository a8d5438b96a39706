package verify

import (
	"context"
	"errors"
	"fmt"
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
		if next := r.NextChange(); !next.IsZero() && !now.Before(next) && len(out) < max {
			out = append(out, phone)
		}
	}
	sort.Strings(out)
	return out, nil
}

// fakeChannel records deliveries; deliver, when set, decides the outcome.
type fakeChannel struct {
	mu      sync.Mutex
	sent    []Delivery
	deliver func(Delivery) error
}

func (f *fakeChannel) Deliver(_ context.Context, d Delivery) error {
	if f.deliver != nil {
		if err := f.deliver(d); err != nil {
			return err
		}
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.sent = append(f.sent, d)
	return nil
}

// last returns the last delivery.
func (f *fakeChannel) last(t *testing.T) Delivery {
	t.Helper()
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.sent) == 0 {
		t.Fatal("nothing delivered")
	}
	return f.sent[len(f.sent)-1]
}

// lastCode returns the code of the last delivery.
func (f *fakeChannel) lastCode(t *testing.T) string {
	t.Helper()
	d := f.last(t)
	if d.Code == "" || strings.Trim(d.Code, "0123456789") != "" {
		t.Fatalf("no code in %+v", d)
	}
	return d.Code
}

func (f *fakeChannel) count() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.sent)
}

type publication struct {
	phone   string
	o       Outcome
	exclude string
}

type fakePub struct {
	mu   sync.Mutex
	got  []publication
	told []told
}

// told is an outcome sent to one connection.
type told struct {
	conn string
	o    Outcome
}

func (p *fakePub) Tell(conn string, o Outcome) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.told = append(p.told, told{conn, o})
}

func (p *fakePub) Publish(phone string, o Outcome, exclude string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.got = append(p.got, publication{phone, o, exclude})
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
	svc   *Service
	store *memStore
	sms   *fakeChannel
	pub   *fakePub
	clock *clock
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
	h := &harness{store: newMemStore(), sms: &fakeChannel{}, pub: &fakePub{},
		clock: &clock{now: time.Date(2026, 11, 22, 12, 0, 0, 0, time.UTC)}}
	svc, err := NewService(cfg, h.deps())
	if err != nil {
		t.Fatal(err)
	}
	h.svc = svc
	return h
}

// deps are the harness's collaborators, for a second Service on them.
func (h *harness) deps() Deps {
	return Deps{Store: h.store, Channels: Channels{DefaultChannel: h.sms}, Pub: h.pub, Now: h.clock.Now}
}

func wantKind(t *testing.T, o Outcome, kind Kind) {
	t.Helper()
	if o.Kind != kind {
		t.Fatalf("outcome = %s %+v, want %s", o.Kind, o, kind)
	}
}

// mustRegister registers and fails the test on an internal error.
func mustRegister(t *testing.T, svc *Service, who Requester, reg Registration) Outcome {
	t.Helper()
	o, err := svc.Register(context.Background(), who, reg)
	if err != nil {
		t.Fatalf("register %+v: %v (outcome %+v)", reg, err, o)
	}
	return o
}

// mustVerify checks a code and fails the test on an internal error.
func mustVerify(t *testing.T, svc *Service, who Requester, rawPhone, code string) Outcome {
	t.Helper()
	o, err := svc.Verify(context.Background(), who, rawPhone, code)
	if err != nil {
		t.Fatalf("verify %s %q: %v (outcome %+v)", rawPhone, code, err, o)
	}
	return o
}

// mustResume resumes and fails the test on an internal error.
func mustResume(t *testing.T, svc *Service, who Requester, rawPhone string) Outcome {
	t.Helper()
	o, err := svc.Resume(context.Background(), who, rawPhone)
	if err != nil {
		t.Fatalf("resume %s: %v (outcome %+v)", rawPhone, err, o)
	}
	return o
}

func (h *harness) register(t *testing.T, who Requester) Outcome {
	t.Helper()
	return mustRegister(t, h.svc, who, Registration{Phone: phone})
}

func (h *harness) resume(t *testing.T, who Requester) Outcome {
	t.Helper()
	return mustResume(t, h.svc, who, phone)
}

func (h *harness) verify(t *testing.T, who Requester, code string) Outcome {
	t.Helper()
	return mustVerify(t, h.svc, who, phone, code)
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
	o := mustRegister(t, h.svc, alice, Registration{Phone: "(415) 555-2671"})
	if o.Phone != phone {
		t.Fatalf("normalised to %q", o.Phone)
	}
	wantKind(t, o, CodeSent)
	if o.ExpiresIn != 600*time.Second || o.ResendIn != 30*time.Second || o.CodeLength != 6 || o.Channel != DefaultChannel {
		t.Fatalf("code_sent outcome = %+v", o)
	}
	if d := h.sms.last(t); d.To != phone {
		t.Fatalf("delivered to %q, want %s", d.To, phone)
	}
	code := h.sms.lastCode(t)
	if len(code) != 6 {
		t.Fatalf("code %q", code)
	}
	o = h.verify(t, alice, code)
	wantKind(t, o, Verified)
	if o.Token == "" {
		t.Fatal("requester got no token")
	}
	if o.Phone != phone || o.VerifiedAt.IsZero() {
		t.Fatalf("verified outcome = %+v", o)
	}
	if len(h.pub.got) != 1 || h.pub.got[0].o.Kind != Verified || h.pub.got[0].phone != phone || h.pub.got[0].exclude != alice.ConnID {
		t.Fatalf("publications = %+v", h.pub.got)
	}
	if h.pub.got[0].o.Token != "" {
		t.Fatal("token was broadcast")
	}
	rec, _ := h.store.Get(context.Background(), phone)
	if !rec.Verified() || rec.Pending != nil {
		t.Fatalf("stored %+v", rec)
	}
	// Invalid after success.
	wantKind(t, h.verify(t, alice, code), NotRequested)
}

func TestCodesAreFreshPerVerificationAndHonourLength(t *testing.T) {
	h := newHarness(t, func(c *Config) { c.CodeLength = 8; c.ResendAfter = 0 })
	seen := map[string]bool{}
	for range 20 {
		wantKind(t, h.register(t, alice), CodeSent)
		code := h.sms.lastCode(t)
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
		o := mustRegister(t, h.svc, alice, Registration{Phone: in})
		wantKind(t, o, InvalidPhone)
		if o.Phone != "" {
			t.Fatalf("phone %q returned for invalid input", o.Phone)
		}
		wantKind(t, mustVerify(t, h.svc, alice, in, "123456"), InvalidPhone)
	}
	if h.sms.count() != 0 || len(h.store.recs) != 0 {
		t.Fatal("something was sent or stored")
	}
}

func TestAlreadyVerifiedUnlessReverify(t *testing.T) {
	h := newHarness(t)
	h.register(t, alice)
	h.verify(t, alice, h.sms.lastCode(t))
	o := h.register(t, alice)
	wantKind(t, o, AlreadyVerified)
	// The wording ("You have already verified +1...!") is tested in package
	// server. It carries no date: a stranger learns nothing more.
	if o.Phone != phone || !o.VerifiedAt.IsZero() {
		t.Fatalf("already_verified outcome = %+v", o)
	}
	wantKind(t, mustRegister(t, h.svc, alice, Registration{Phone: phone, Reverify: true}), CodeSent)
	if h.sms.count() != 2 {
		t.Fatalf("sent %d", h.sms.count())
	}
}

func TestResendTooSoonThenReplacesOldCode(t *testing.T) {
	h := newHarness(t)
	h.register(t, alice)
	first := h.sms.lastCode(t)
	h.clock.Advance(10 * time.Second)
	o := h.register(t, alice)
	wantKind(t, o, AlreadyRequested)
	if o.ResendIn != 20*time.Second || o.ExpiresIn != 590*time.Second {
		t.Fatalf("already_requested outcome %+v", o)
	}
	if h.sms.count() != 1 {
		t.Fatal("a second text was sent too soon")
	}
	h.clock.Advance(20 * time.Second)
	wantKind(t, h.register(t, alice), CodeSent)
	second := h.sms.lastCode(t)
	if first == second {
		t.Skip("the two random codes collided; nothing to tell apart")
	}
	wantKind(t, h.verify(t, alice, first), WrongCode)
	wantKind(t, h.verify(t, alice, second), Verified)
}

func TestWrongCodesCountDownThenVoidTheCode(t *testing.T) {
	h := newHarness(t, func(c *Config) { c.MaxAttempts = 3 })
	h.register(t, alice)
	code := h.sms.lastCode(t)
	for left := 2; left >= 1; left-- {
		o := h.verify(t, alice, wrongCode(code))
		wantKind(t, o, WrongCode)
		if o.AttemptsLeft != left {
			t.Fatalf("attempts left = %d, want %d", o.AttemptsLeft, left)
		}
	}
	wantKind(t, h.verify(t, alice, "abc"), TooManyAttempts)
	if len(h.pub.got) != 1 || h.pub.got[0].o.Kind != TooManyAttempts {
		t.Fatalf("reset not published: %+v", h.pub.got)
	}
	wantKind(t, h.verify(t, alice, code), NotRequested)
}

func TestExpiredCodeIsRefusedAndSweptWithAPush(t *testing.T) {
	h := newHarness(t)
	h.register(t, alice)
	code := h.sms.lastCode(t)
	h.clock.Advance(10 * time.Minute)
	wantKind(t, h.verify(t, alice, code), Expired)

	h.register(t, alice)
	h.clock.Advance(10*time.Minute + time.Second)
	n, err := h.svc.SweepExpired(context.Background())
	if err != nil || n != 1 {
		t.Fatalf("swept %d, %v", n, err)
	}
	last := h.pub.got[len(h.pub.got)-1]
	if last.o.Kind != Expired || last.exclude != "" {
		t.Fatalf("sweep published %+v", last)
	}
	wantKind(t, h.verify(t, alice, code), NotRequested)
}

func TestNotRequested(t *testing.T) {
	h := newHarness(t)
	wantKind(t, h.verify(t, alice, "123456"), NotRequested)
}

func TestProviderRejectingTheNumberLeavesNothingPending(t *testing.T) {
	h := newHarness(t)
	h.sms.deliver = func(Delivery) error { return errors.Join(errors.New("21211"), ErrRejectedNumber) }
	wantKind(t, h.register(t, alice), NumberRejected) // on the wire: update invalid_phone
	if len(h.store.recs) != 0 {
		t.Fatalf("left %v", h.store.recs)
	}
	h.sms.deliver = nil
	wantKind(t, h.register(t, alice), CodeSent)
}

func TestAFailureThatSentNothingLeavesNothingHalfDone(t *testing.T) {
	h := newHarness(t, func(c *Config) { c.Limits.PerNumber = Rate{N: 1, Per: time.Hour} })
	h.sms.deliver = func(Delivery) error { return fmt.Errorf("%w: connection refused", ErrNotSent) }
	wantKind(t, h.register(t, alice), SendFailed)
	if len(h.store.recs) != 0 {
		t.Fatalf("left %v", h.store.recs)
	}
	// The failed send did not use up the number's only slot.
	h.sms.deliver = nil
	wantKind(t, h.register(t, alice), CodeSent)
}

func TestAFailedResendThatSentNothingPutsTheArrivedCodeBack(t *testing.T) {
	h := newHarness(t)
	wantKind(t, h.register(t, alice), CodeSent)
	code := h.sms.lastCode(t)
	h.clock.Advance(time.Minute)
	h.sms.deliver = func(Delivery) error { return fmt.Errorf("%w: 401", ErrNotSent) }
	wantKind(t, h.register(t, bob), SendFailed)
	wantKind(t, h.verify(t, alice, code), Verified)
}

// TestAnUncertainFailureKeepsTheCodeAndCountsIt: a timeout or a 5xx may
// have sent the text, so the cost cap counts it, its code still works if
// it arrives late, and the person may ask for a new one at once.
func TestAnUncertainFailureKeepsTheCodeAndCountsIt(t *testing.T) {
	h := newHarness(t, func(c *Config) {
		c.Limits.PerNumber = Rate{N: 2, Per: time.Hour}
		c.Limits.PerMinute = 2
	})
	var late string
	h.sms.deliver = func(d Delivery) error { late = d.Code; return errors.New("timeout") }
	wantKind(t, h.register(t, alice), SendUncertain) // on the wire: send_failed, "may still arrive"
	h.sms.deliver = nil
	if o := h.resume(t, alice); o.Kind != CodePending {
		t.Fatalf("after an uncertain send: %v, want the code still pending", o.Kind)
	}
	wantKind(t, h.verify(t, alice, late), Verified) // the late text works

	h.sms.deliver = func(d Delivery) error { return errors.New("503") }
	again := Registration{Phone: phone, Reverify: true}
	wantKind(t, mustRegister(t, h.svc, alice, again), SendUncertain)
	// Both uncertain sends counted, against the number's cap and the
	// deployment's: a struggling provider does not open the cost cap.
	wantKind(t, mustRegister(t, h.svc, alice, again), RateLimited)
}

func TestAfterAnUncertainFailureANewCodeMayBeAskedAtOnce(t *testing.T) {
	h := newHarness(t)
	h.sms.deliver = func(d Delivery) error { return errors.New("timeout") }
	wantKind(t, h.register(t, alice), SendUncertain)
	h.sms.deliver = nil
	wantKind(t, h.register(t, alice), CodeSent) // no resend wait
	wantKind(t, h.verify(t, alice, h.sms.lastCode(t)), Verified)
}

func TestStoreFailureSendsNoText(t *testing.T) {
	h := newHarness(t)
	diskFull := errors.New("disk full")
	h.store.failAll = diskFull
	if o, err := h.svc.Register(context.Background(), alice, Registration{Phone: phone}); !errors.Is(err, diskFull) {
		t.Fatalf("register on a failing store: %+v, %v; want an error wrapping %v", o, err, diskFull)
	}
	if o, err := h.svc.Verify(context.Background(), alice, phone, "123456"); !errors.Is(err, diskFull) {
		t.Fatalf("verify on a failing store: %+v, %v; want an error wrapping %v", o, err, diskFull)
	}
	if o, err := h.svc.Resume(context.Background(), alice, phone); !errors.Is(err, diskFull) {
		t.Fatalf("resume on a failing store: %+v, %v; want an error wrapping %v", o, err, diskFull)
	}
	if h.sms.count() != 0 {
		t.Fatal("a text was sent for a code that was never stored")
	}
	if len(h.pub.got) != 0 {
		t.Fatalf("published %+v on a failing store", h.pub.got)
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
				wantKind(t, mustRegister(t, h.svc, tc.who(i), Registration{Phone: tc.phone(i)}), CodeSent)
			}
			o := mustRegister(t, h.svc, tc.who(2), Registration{Phone: tc.phone(2)})
			wantKind(t, o, RateLimited)
			if o.RetryAfter <= 0 {
				t.Fatalf("retry after = %v", o.RetryAfter)
			}
			if h.sms.count() != 2 {
				t.Fatalf("sent %d, want 2", h.sms.count())
			}
			h.clock.Advance(time.Hour)
			wantKind(t, mustRegister(t, h.svc, tc.who(3), Registration{Phone: tc.phone(3)}), CodeSent)
		})
	}
}

func TestRefusalsDoNotUseUpRateLimits(t *testing.T) {
	h := newHarness(t, func(c *Config) { c.Limits.PerConnection = Rate{N: 1, Per: time.Hour} })
	h.register(t, alice)
	for range 5 {
		wantKind(t, h.register(t, alice), AlreadyRequested)
	}
	h.verify(t, alice, h.sms.lastCode(t))
	if h.sms.count() != 1 {
		t.Fatal("refusals sent texts")
	}
}

func TestResumeReportsStateWithoutSending(t *testing.T) {
	h := newHarness(t)
	wantKind(t, mustResume(t, h.svc, alice, phone), NothingPending) // on the wire: reset not_requested
	h.register(t, alice)
	h.clock.Advance(5 * time.Second)
	o := mustResume(t, h.svc, alice, phone)
	wantKind(t, o, CodePending)
	if o.ResendIn != 25*time.Second || o.CodeLength != 6 {
		t.Fatalf("code_pending outcome %+v", o)
	}
	h.verify(t, alice, h.sms.lastCode(t))
	wantKind(t, mustResume(t, h.svc, alice, phone), AlreadyVerified)
	if h.sms.count() != 1 {
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
	deps := h.deps()
	deps.Observe = obs
	svc, err := NewService(h.svc.cfg, deps)
	if err != nil {
		t.Fatal(err)
	}
	// A script walks +1 415 555 2000, 2001, ... each from a fresh
	// connection and address, so only the range limit can see it.
	refused := 0
	for i := range 50 {
		who := Requester{ConnID: fmt.Sprint("c", i), ClientAddr: fmt.Sprint("198.51.100.", i)}
		o := mustRegister(t, svc, who, Registration{Phone: fmt.Sprintf("+1415555%04d", 2000+i)})
		if o.Kind == RateLimited {
			refused++
		}
	}
	if h.sms.count() != 5 || refused != 45 {
		t.Fatalf("sweep of 50 numbers: %d texts, %d refused; want 5 and 45", h.sms.count(), refused)
	}
	if len(obs.limits) != 45 || obs.limits[0] != "prefix" {
		t.Fatalf("observed limits %v, want 45 x prefix", obs.limits)
	}
	wantKind(t, mustRegister(t, svc, alice, Registration{Phone: "+14155553000"}), CodeSent)
}

func TestCountriesOutsideTheListGetNoText(t *testing.T) {
	h := newHarness(t, func(c *Config) {
		c.Countries = []string{"US", "CA"}
		c.TestNumbers = map[string]string{"+15555550100": "123456"}
	})
	for _, p := range []string{"+442071838750", "+33612345678", "+61412345678"} {
		o := mustRegister(t, h.svc, alice, Registration{Phone: p})
		wantKind(t, o, CountryNotAllowed)
		if o.Country == "" || o.Phone != p {
			t.Fatalf("answer lacks country or number: %+v", o)
		}
	}
	if h.sms.count() != 0 || len(h.store.recs) != 0 {
		t.Fatalf("%d texts, %d records for refused countries", h.sms.count(), len(h.store.recs))
	}
	for _, p := range []string{"+14155552671", "+16135550123", "+15555550100"} {
		wantKind(t, mustRegister(t, h.svc, alice, Registration{Phone: p}), CodeSent)
	}
}

func TestBruteForceEndsAtMaxAttemptsForEveryCode(t *testing.T) {
	h := newHarness(t, func(c *Config) { c.MaxAttempts = 5 })
	for round := range 4 {
		wantKind(t, h.register(t, alice), CodeSent)
		right := h.sms.lastCode(t)
		tried := 0
		for guess := 0; ; guess++ {
			g := fmt.Sprintf("%06d", guess)
			if g == right {
				continue
			}
			tried++
			o := h.verify(t, alice, g)
			if o.Kind != WrongCode {
				wantKind(t, o, TooManyAttempts)
				break
			}
		}
		if tried != 5 {
			t.Fatalf("round %d: the code died after %d guesses, want 5", round, tried)
		}
		wantKind(t, h.verify(t, alice, right), NotRequested)
		h.clock.Advance(h.svc.cfg.ResendAfter)
	}
}

func TestObserverHearsVerificationTime(t *testing.T) {
	obs := &observed{}
	h := newHarness(t)
	deps := h.deps()
	deps.Observe = obs
	svc, err := NewService(h.svc.cfg, deps)
	if err != nil {
		t.Fatal(err)
	}
	mustRegister(t, svc, alice, Registration{Phone: phone})
	h.clock.Advance(42 * time.Second)
	wantKind(t, mustVerify(t, svc, alice, phone, h.sms.lastCode(t)), Verified)
	if len(obs.verified) != 1 || obs.verified[0] != 42*time.Second {
		t.Fatalf("observed %v, want [42s]", obs.verified)
	}
}

func TestTestNumbersGetNoTextAndOnlyTheirCode(t *testing.T) {
	h := newHarness(t, func(c *Config) { c.TestNumbers = map[string]string{"+15555550100": "123456"} })
	o := mustRegister(t, h.svc, alice, Registration{Phone: "+1 555 555 0100"})
	wantKind(t, o, CodeSent)
	if o.Phone != "+15555550100" || h.sms.count() != 0 {
		t.Fatalf("phone %q, %d texts", o.Phone, h.sms.count())
	}
	wantKind(t, mustVerify(t, h.svc, alice, o.Phone, "654321"), WrongCode)
	wantKind(t, mustVerify(t, h.svc, alice, o.Phone, "123456"), Verified)
}

func TestUnknownChannelIsAnErrorAndSendsNothing(t *testing.T) {
	h := newHarness(t)
	o, err := h.svc.Register(context.Background(), alice, Registration{Phone: phone, Channel: "pigeon"})
	if !errors.Is(err, ErrUnknownChannel) {
		t.Fatalf("register on an unknown channel: %+v, %v; want an error wrapping ErrUnknownChannel", o, err)
	}
	if o.Kind == CodeSent {
		t.Fatalf("outcome %+v for an unknown channel", o)
	}
	if h.sms.count() != 0 || len(h.store.recs) != 0 || len(h.pub.got) != 0 {
		t.Fatalf("%d texts, %d records, %d publications for an unknown channel",
			h.sms.count(), len(h.store.recs), len(h.pub.got))
	}
	// Nothing was spent: the default channel still works at once.
	wantKind(t, h.register(t, alice), CodeSent)
}

func TestASecondChannelGetsTheDeliveryWhenNamed(t *testing.T) {
	h := newHarness(t)
	call := &fakeChannel{}
	deps := h.deps()
	deps.Channels["call"] = call
	svc, err := NewService(h.svc.cfg, deps)
	if err != nil {
		t.Fatal(err)
	}
	who := alice
	who.Lang, who.Host = "es", "shop.example"
	o := mustRegister(t, svc, who, Registration{Phone: phone, Channel: "call"})
	wantKind(t, o, CodeSent)
	if o.Channel != "call" || o.Phone != phone {
		t.Fatalf("code_sent outcome %+v, want channel call", o)
	}
	if call.count() != 1 || h.sms.count() != 0 {
		t.Fatalf("call got %d, sms got %d; want 1 and 0", call.count(), h.sms.count())
	}
	code := call.lastCode(t)
	if d := call.last(t); d.To != phone || len(d.Code) != 6 || d.Lang != "es" || d.Host != "shop.example" {
		t.Fatalf("delivery %+v", d)
	}
	// Naming no channel after the resend wait takes the default one.
	h.clock.Advance(h.svc.cfg.ResendAfter)
	o = mustRegister(t, svc, who, Registration{Phone: phone})
	wantKind(t, o, CodeSent)
	if o.Channel != DefaultChannel || h.sms.count() != 1 || call.count() != 1 {
		t.Fatalf("outcome %+v; call got %d, sms got %d; want sms", o, call.count(), h.sms.count())
	}
	newer := h.sms.lastCode(t)
	if newer == code {
		t.Skip("the two random codes collided; nothing to tell apart")
	}
	wantKind(t, mustVerify(t, svc, who, phone, code), WrongCode)
	wantKind(t, mustVerify(t, svc, who, phone, newer), Verified)
}
