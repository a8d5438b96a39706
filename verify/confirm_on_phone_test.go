package verify

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"time"

	"github.com/pquerna/otp"
	"github.com/pquerna/otp/totp"

	"verifier/seal"
)

var testSecret = bytes.Repeat([]byte{9}, 32)

// newPhoneHarness has tap-to-verify links, authenticator apps and an
// inbound channel.
func newPhoneHarness(t *testing.T, tweak ...func(*Config)) *harness {
	t.Helper()
	h := newHarness(t, append([]func(*Config){counting}, tweak...)...)
	links, err := seal.NewLinks(testSecret)
	if err != nil {
		t.Fatal(err)
	}
	apps, _ := seal.New(testSecret, "apps")
	d := h.deps()
	d.Links, d.Secrets = links, apps
	d.Channels[InboundChannel] = inbound{}
	svc, err := NewService(h.svc.cfg, d)
	if err != nil {
		t.Fatal(err)
	}
	h.svc = svc
	return h
}

type inbound struct{}

func (inbound) Deliver(context.Context, Delivery) error { return nil }
func (inbound) Number() string                          { return "+15005550006" }

func (h *harness) tap(t *testing.T, id string) Outcome {
	t.Helper()
	o, err := h.svc.Tap(context.Background(), bob, id)
	if err != nil {
		t.Fatal(err)
	}
	return o
}

func (h *harness) linkInfo(t *testing.T, id string) Outcome {
	t.Helper()
	o, err := h.svc.LinkInfo(context.Background(), bob, id)
	if err != nil {
		t.Fatal(err)
	}
	return o
}

// toldToken is the token the connection conn was told, "" if none.
func (h *harness) toldToken(conn string) string {
	h.pub.mu.Lock()
	defer h.pub.mu.Unlock()
	for _, m := range h.pub.told {
		if m.conn == conn && m.o.Kind == Verified {
			return m.o.Token
		}
	}
	return ""
}

func TestALinkVerifiesOnlyWhenTappedAndOnlyOnce(t *testing.T) {
	h := newPhoneHarness(t)
	mustRegister(t, h.svc, Requester{ConnID: "c1", ClientAddr: "192.0.2.1", Host: "shop.example"}, Registration{Phone: phone})
	id := h.sms.last(t).Link
	if id == "" {
		t.Fatal("the text carries no link")
	}
	info := h.linkInfo(t, id)
	wantKind(t, info, LinkLive)
	if info.Site != "shop.example" || h.store.recs[phone].Verified() {
		t.Fatalf("link info %+v; record %+v: looking verified nothing and names the site", info, h.store.recs[phone])
	}
	o := h.tap(t, id)
	wantKind(t, o, Verified)
	if o.Token != "" || o.Site != "shop.example" {
		t.Fatalf("the tapping phone got %+v: want the site and no token", o)
	}
	if h.toldToken("c1") == "" || !h.store.recs[phone].Verified() {
		t.Fatal("the asking tab was not told verified with its token")
	}
	wantKind(t, h.tap(t, id), LinkUsed)
	wantKind(t, h.linkInfo(t, id), LinkUsed)
	if w := h.store.recs[phone].Wrong.Count; w != 1 {
		t.Fatalf("the tap counted %d against the budget, want 1", w)
	}
}

func TestALinkDiesWithItsCode(t *testing.T) {
	h := newPhoneHarness(t, func(c *Config) { c.ResendAfter = 0 })
	h.register(t, alice)
	first := h.sms.last(t).Link
	h.register(t, alice) // a new code: the old link is void
	wantKind(t, h.tap(t, first), LinkUsed)
	second := h.sms.last(t).Link
	wantKind(t, h.verify(t, alice, h.sms.lastCode(t)), Verified)
	wantKind(t, h.tap(t, second), LinkUsed) // the code was used

	h.register(t, Requester{ConnID: "c9", ClientAddr: "192.0.2.9"})
	mustRegister(t, h.svc, alice, Registration{Phone: phone, Reverify: true})
	third := h.sms.last(t).Link
	h.clock.Advance(h.svc.cfg.CodeTTL)
	wantKind(t, h.tap(t, third), LinkUsed) // expired
	if h.store.recs[phone].Pending != nil {
		t.Fatal("the expired code is still pending")
	}
}

func TestForgedLinksAreRefusedAndCostTheClientLookups(t *testing.T) {
	h := newPhoneHarness(t, func(c *Config) { c.Limits.LookupsPerClient = Rate{N: 3, Per: time.Hour} })
	h.register(t, alice)
	id := h.sms.last(t).Link
	for _, bad := range []string{"nope", strings.Repeat("A", 48), id[:47] + "B"} {
		wantKind(t, h.tap(t, bad), LinkInvalid)
	}
	wantKind(t, h.tap(t, id), Locked) // bob has tried too many made-up links
	if h.store.recs[phone].Verified() {
		t.Fatal("verified by a client past its lookups")
	}
}

func TestOnlyTextsCarryLinks(t *testing.T) {
	h := newPhoneHarness(t)
	call := &fakeChannel{}
	h.svc.channels["call"] = call
	mustRegister(t, h.svc, alice, Registration{Phone: phone, Channel: "call"})
	if d := call.last(t); d.Link != "" {
		t.Fatalf("a call carries link %q", d.Link)
	}
}

func TestATextedCodeFromTheRightPhoneVerifies(t *testing.T) {
	h := newPhoneHarness(t)
	o := mustRegister(t, h.svc, alice, Registration{Phone: phone, Channel: InboundChannel})
	wantKind(t, o, CodeSent)
	if o.SendTo != "+15005550006" || len(o.Code) != 6 || h.sms.count() != 0 {
		t.Fatalf("register %+v: want the code and our number, nothing texted", o)
	}
	if h.store.recs[phone].Sends.Count != 0 {
		t.Fatal("a code nobody sent counted as a send")
	}
	got, err := h.svc.Received(context.Background(), "+14155550000", o.Code) // another phone
	if err != nil || got.Kind != NotRequested || h.store.recs[phone].Verified() {
		t.Fatalf("a text from another phone: %+v %v", got, err)
	}
	got, _ = h.svc.Received(context.Background(), phone, "my code is "+wrongCode(o.Code))
	wantKind(t, got, WrongCode)
	got, _ = h.svc.Received(context.Background(), phone, "Code: "+o.Code+" thanks")
	wantKind(t, got, Verified)
	if got.Token != "" || h.toldToken(alice.ConnID) == "" {
		t.Fatalf("received %+v: the page that asked must get the token, not the webhook", got)
	}
	got, _ = h.svc.Received(context.Background(), phone, o.Code) // a replay
	wantKind(t, got, NotRequested)
}

func TestATextedCodeExpiresAndAnSMSCodeCannotBeTextedBack(t *testing.T) {
	h := newPhoneHarness(t)
	o := mustRegister(t, h.svc, alice, Registration{Phone: phone, Channel: InboundChannel})
	h.clock.Advance(h.svc.cfg.CodeTTL)
	got, _ := h.svc.Received(context.Background(), phone, o.Code)
	wantKind(t, got, Expired)

	h.register(t, alice)
	got, _ = h.svc.Received(context.Background(), phone, h.sms.lastCode(t))
	wantKind(t, got, NotRequested)
}

// appCode is the app's code at t.
func appCode(t *testing.T, secret string, at time.Time) string {
	t.Helper()
	code, err := totp.GenerateCodeCustom(secret, at, totp.ValidateOpts{Period: 30, Digits: otp.DigitsSix, Algorithm: otp.AlgorithmSHA1})
	if err != nil {
		t.Fatal(err)
	}
	return code
}

// enrolApp verifies by text on alice's connection and adds an app; it
// returns the app's key.
func enrolApp(t *testing.T, h *harness) string {
	t.Helper()
	h.register(t, alice)
	wantKind(t, h.verify(t, alice, h.sms.lastCode(t)), Verified)
	setup, err := h.svc.AddApp(context.Background(), alice, phone)
	if err != nil || setup.Kind != AppSetup || setup.AppSecret == "" || !strings.HasPrefix(setup.AppURL, "otpauth://totp/") {
		t.Fatalf("AddApp = %+v, %v", setup, err)
	}
	o, _ := h.svc.ConfirmApp(context.Background(), alice, phone, wrongCode(appCode(t, setup.AppSecret, h.clock.Now())))
	wantKind(t, o, AppWrongCode)
	o, _ = h.svc.ConfirmApp(context.Background(), alice, phone, appCode(t, setup.AppSecret, h.clock.Now()))
	wantKind(t, o, AppAdded)
	return setup.AppSecret
}

func TestAnAppIsAddedOnlyRightAfterAVerificationOnThatConnection(t *testing.T) {
	h := newPhoneHarness(t)
	o, _ := h.svc.AddApp(context.Background(), alice, phone)
	wantKind(t, o, AppNotAllowed) // not verified
	h.register(t, alice)
	h.verify(t, alice, h.sms.lastCode(t))
	o, _ = h.svc.AddApp(context.Background(), bob, phone)
	wantKind(t, o, AppNotAllowed) // another connection
	h.clock.Advance(sessionTTL)
	o, _ = h.svc.AddApp(context.Background(), alice, phone)
	wantKind(t, o, AppNotAllowed) // too late
}

func TestAnAppsCodeVerifiesOnceWithinOneStepOfSkew(t *testing.T) {
	h := newPhoneHarness(t)
	secret := enrolApp(t, h)
	h.clock.Advance(time.Minute)
	askApp := func() {
		t.Helper()
		wantKind(t, mustRegister(t, h.svc, bob, Registration{Phone: phone, Channel: AppChannel, Reverify: true}), CodeSent)
	}
	askApp()
	now := h.clock.Now()
	wantKind(t, h.verify(t, bob, appCode(t, secret, now.Add(-2*appPeriod))), WrongCode) // two steps back
	wantKind(t, h.verify(t, bob, appCode(t, secret, now.Add(2*appPeriod))), WrongCode)  // two steps ahead
	wantKind(t, h.verify(t, bob, appCode(t, secret, now.Add(-appPeriod))), Verified)    // one step back
	askApp()
	wantKind(t, h.verify(t, bob, appCode(t, secret, now.Add(-appPeriod))), WrongCode) // the same code again
	wantKind(t, h.verify(t, bob, appCode(t, secret, now.Add(appPeriod))), Verified)   // one step ahead
	askApp()
	wantKind(t, h.verify(t, bob, appCode(t, secret, now)), WrongCode) // older than the last one taken
	if w := h.store.recs[phone].Wrong.Count; w != 5 {                 // 1 while enrolling, 4 here
		t.Fatalf("wrong codes counted: %d, want 5", w)
	}
}

func TestAnAppsCodesObeyTheNumbersBudget(t *testing.T) {
	h := newPhoneHarness(t, func(c *Config) { c.Limits.WrongPerNumber = Rate{N: 3, Per: time.Hour}; c.MaxAttempts = 10 })
	secret := enrolApp(t, h) // one wrong code already
	mustRegister(t, h.svc, bob, Registration{Phone: phone, Channel: AppChannel, Reverify: true})
	h.clock.Advance(appPeriod)
	wantKind(t, h.verify(t, bob, "000000"), WrongCode)
	wantKind(t, h.verify(t, bob, "000001"), WrongCode)
	wantKind(t, h.verify(t, bob, appCode(t, secret, h.clock.Now())), Locked)
}

func TestAnAppIsRemovedOnlyAfterAnotherChannelVerified(t *testing.T) {
	h := newPhoneHarness(t)
	secret := enrolApp(t, h)
	o, _ := h.svc.RemoveApp(context.Background(), bob, phone)
	wantKind(t, o, AppNotAllowed)
	mustRegister(t, h.svc, bob, Registration{Phone: phone, Channel: AppChannel, Reverify: true})
	h.clock.Advance(appPeriod)
	wantKind(t, h.verify(t, bob, appCode(t, secret, h.clock.Now())), Verified)
	o, _ = h.svc.RemoveApp(context.Background(), bob, phone)
	wantKind(t, o, AppNotAllowed) // verified by the app itself
	o, _ = h.svc.RemoveApp(context.Background(), alice, phone)
	wantKind(t, o, AppRemoved) // alice verified by text
	o = mustRegister(t, h.svc, bob, Registration{Phone: phone, Channel: AppChannel, Reverify: true})
	wantKind(t, o, AppNotSet)
}

func TestAnAppsSecretIsStoredSealed(t *testing.T) {
	h := newPhoneHarness(t)
	secret := enrolApp(t, h)
	app := h.store.recs[phone].App
	if app == nil || !app.Enrolled || bytes.Contains(app.Secret, []byte(secret)) {
		t.Fatalf("stored app %+v: want it enrolled and its key sealed", app)
	}
}

// rerunningStore runs each Update's function first on another state of
// the record (decoy), and throws that away, as a store shared by several
// servers does when another server changed the record meanwhile.
type rerunningStore struct {
	*memStore
	decoy func(Record) Record
}

func (s rerunningStore) Update(ctx context.Context, phone string, fn func(*Record) error) error {
	s.mu.Lock()
	r := s.decoy(clone(s.recs[phone]))
	s.mu.Unlock()
	fn(&r)
	return s.memStore.Update(ctx, phone, fn)
}

func TestWhatATapReportsComesFromTheRunThatCounted(t *testing.T) {
	h := newPhoneHarness(t)
	h.register(t, alice)
	id := h.sms.last(t).Link
	h.svc.store = rerunningStore{h.store, func(r Record) Record { // first seen expired
		if r.Pending != nil {
			p := *r.Pending
			p.ExpiresAt = time.Time{}
			r.Pending = &p
		}
		return r
	}}
	wantKind(t, h.tap(t, id), Verified)
	for _, p := range h.pub.got {
		if p.o.Kind == Expired {
			t.Fatal("the discarded run's expiry was published")
		}
	}
}

func TestWhatRemovingAnAppReportsComesFromTheRunThatCounted(t *testing.T) {
	h := newPhoneHarness(t)
	enrolApp(t, h)
	h.svc.store = rerunningStore{h.store, func(r Record) Record { r.App = nil; return r }} // first seen without
	o, err := h.svc.RemoveApp(context.Background(), alice, phone)
	if err != nil || o.Kind != AppRemoved || h.store.recs[phone].App != nil {
		t.Fatalf("RemoveApp = %+v, %v; app %+v", o, err, h.store.recs[phone].App)
	}
}
