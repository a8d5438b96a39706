package verify

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"
)

// fakeEngine is a code engine in memory: its channel sends a code it
// makes itself, and Check answers as told.
type fakeEngine struct {
	mu     sync.Mutex
	code   string
	answer error // when set, every check fails with it
	checks int
}

func (e *fakeEngine) Deliver(_ context.Context, d Delivery) error {
	if d.Code != "" {
		return errors.New("the engine's channel was handed a code of ours")
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	e.code = "424242"
	return nil
}

func (e *fakeEngine) Check(_ context.Context, _, code string) (bool, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.checks++
	if e.answer != nil {
		return false, e.answer
	}
	return code == e.code, nil
}

func newEngineHarness(t *testing.T, tweak ...func(*Config)) (*harness, *fakeEngine) {
	t.Helper()
	h := newHarness(t, tweak...)
	e := &fakeEngine{}
	d := h.deps()
	d.Channels, d.Engine = Channels{DefaultChannel: e}, e
	svc, err := NewService(h.svc.cfg, d)
	if err != nil {
		t.Fatal(err)
	}
	h.svc = svc
	return h, e
}

// counting keeps the per-number windows, so tests can read them.
func counting(c *Config) {
	c.Limits.PerNumber = Rate{N: 10, Per: time.Hour}
	c.Limits.WrongPerNumber = Rate{N: 10, Per: time.Hour}
}

func TestTheEngineMakesTheCodeAndTheStoreKeepsNone(t *testing.T) {
	h, e := newEngineHarness(t, counting)
	wantKind(t, h.register(t, alice), CodeSent)
	p := h.store.recs[phone].Pending
	if p == nil || !p.Remote {
		t.Fatalf("pending = %+v, want a remote code", p)
	}
	if code, _ := p.code(); code == e.code {
		t.Fatal("the stored name of the send is the code")
	}
	wantKind(t, h.verify(t, alice, "111111"), WrongCode)
	if got := h.store.recs[phone]; got.Pending.Attempts != 1 || got.Wrong.Count != 1 {
		t.Fatalf("after a wrong code: %+v", got)
	}
	o := h.verify(t, alice, e.code)
	wantKind(t, o, Verified)
	if r := h.store.recs[phone]; o.Token == "" || !r.Verified() || r.Pending != nil {
		t.Fatalf("verified: %+v, record %+v", o, h.store.recs[phone])
	}
}

func TestAMalformedCodeNeverReachesTheEngine(t *testing.T) {
	h, e := newEngineHarness(t)
	h.register(t, alice)
	wantKind(t, h.verify(t, alice, "12ab56"), WrongCode)
	wantKind(t, h.verify(t, alice, "1234567"), WrongCode)
	if e.checks != 0 {
		t.Fatalf("the engine was asked %d times", e.checks)
	}
}

func TestTheEnginesAnswersBecomeOutcomes(t *testing.T) {
	for _, tc := range []struct {
		answer  error
		want    Kind
		pending bool
	}{
		{ErrNoCode, Expired, false},
		{ErrChecksExhausted, TooManyAttempts, false},
		{errors.New("503 from the engine"), CheckFailed, true},
	} {
		h, e := newEngineHarness(t)
		h.register(t, alice)
		e.answer = tc.answer
		wantKind(t, h.verify(t, alice, "123456"), tc.want)
		if got := h.store.recs[phone].Pending != nil; got != tc.pending {
			t.Errorf("%v: pending = %v, want %v", tc.answer, got, tc.pending)
		}
	}
}

func TestARemoteCodeStillObeysOurOwnRules(t *testing.T) {
	h, e := newEngineHarness(t, func(c *Config) { c.MaxAttempts = 2 })
	h.register(t, alice)
	wantKind(t, h.verify(t, alice, "111111"), WrongCode)
	wantKind(t, h.verify(t, alice, "222222"), TooManyAttempts)
	wantKind(t, h.verify(t, alice, e.code), NotRequested)

	h.clock.Advance(time.Minute)
	h.register(t, alice)
	h.clock.Advance(h.svc.cfg.CodeTTL)
	wantKind(t, h.verify(t, alice, e.code), Expired)
	if e.checks != 2 {
		t.Fatalf("the engine was asked %d times, want 2 (not for a dead code)", e.checks)
	}
}

func TestTheEngineRefusingMoreSendsGivesEverythingBack(t *testing.T) {
	h, e := newEngineHarness(t, counting)
	h.register(t, alice)
	first := *h.store.recs[phone].Pending
	h.clock.Advance(time.Minute)
	h.svc.channels[DefaultChannel] = &fakeChannel{deliver: func(Delivery) error { return ErrSendsExhausted }}
	o := h.register(t, alice)
	wantKind(t, o, RateLimited)
	if o.RetryAfter <= 0 {
		t.Fatalf("no retry_after: %+v", o)
	}
	r := h.store.recs[phone]
	if r.Pending == nil || r.Pending.Secret != first.Secret || r.Sends.Count != 1 {
		t.Fatalf("record %+v, want the first code back and one send", r)
	}
	wantKind(t, h.verify(t, alice, e.code), Verified)
}

func TestACodeMadeByAnEngineNoLongerConfiguredFailsCleanly(t *testing.T) {
	h, _ := newEngineHarness(t)
	h.register(t, alice)
	plain, err := NewService(h.svc.cfg, h.deps())
	if err != nil {
		t.Fatal(err)
	}
	wantKind(t, mustVerify(t, plain, alice, phone, "424242"), CheckFailed)
}
