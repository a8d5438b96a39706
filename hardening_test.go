package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"verifier/db"
	"verifier/sms/faketwilio"
	"verifier/verify"
)

// Hardening: what goes only to the asking connection, what development
// mode and the secrets say at start-up, and where /metrics is served.

// nextIsVerifiedWithoutToken reads c's next frame and fails unless it is
// the verified another tab's right code pushes: nothing came before it.
func nextIsVerifiedWithoutToken(t *testing.T, c *client, phone string) {
	t.Helper()
	f := c.next()
	if f.Event != "verified" || f.Data["phone_number"] != phone {
		t.Fatalf("the other tab's next frame is %s %v, want verified for %s: it heard something meant for another connection",
			f.Event, f.Data, phone)
	}
	if tok, ok := f.Data["token"]; ok && tok != "" {
		t.Fatalf("the other tab got a token: %v", f.Data)
	}
}

// verifiedWithToken reads c's answer to its own right code.
func verifiedWithToken(t *testing.T, c *client) {
	t.Helper()
	if f := c.expect("verified", ""); f.Data["token"] == nil || f.Data["token"] == "" {
		t.Fatalf("the tab that typed the code got no token: %v", f.Data)
	}
}

func TestDeliveryReportsReachOnlyTheConnectionThatAskedForTheText(t *testing.T) {
	const public = "https://verify.example.com"
	ts := startServer(t, append([]string{"-public-url=" + public}, noLimits...), nil)
	callback := public + statusPath
	for i, tc := range []struct{ status, reason, errorCode string }{
		{"delivered", "sms_delivered", ""},
		{"failed", "sms_failed", "30008"},
	} {
		t.Run(tc.status, func(t *testing.T) {
			number := numberN(100 + i)
			asker, code := ts.requestCode(t, number)
			other := dial(t, ts.URL) // a second tab on the number
			other.send("resume", map[string]any{"phone_number": number})
			other.expect("update", "code_pending")

			report := url.Values{"MessageSid": {fmt.Sprint("SM", i)}, "MessageStatus": {tc.status}, "To": {number},
				"AccountSid": {fakeSID}}
			if tc.errorCode != "" {
				report.Set("ErrorCode", tc.errorCode)
			}
			if code := signedStatus(t, ts.URL, callback, report); code != http.StatusNoContent {
				t.Fatalf("signed report: %d, want 204", code)
			}

			f := asker.expect("update", tc.reason)
			if f.Data["phone_number"] != number {
				t.Fatalf("report reached the asker as %v", f.Data)
			}
			if tc.errorCode != "" && f.Data["error_code"] != tc.errorCode {
				t.Fatalf("failure report %v lacks error_code %s", f.Data, tc.errorCode)
			}
			// The other tab hears the verified, and nothing before it.
			asker.verify(number, code)
			verifiedWithToken(t, asker)
			nextIsVerifiedWithoutToken(t, other, number)
		})
	}
}

func TestTheDevInboxReachesOnlyTheAskingConnection(t *testing.T) {
	ts := startServer(t, noLimits, map[string]string{"TWILIO_ACCOUNT_SID": ""})
	// askFor has c ask for a code and returns it from c's dev inbox.
	askFor := func(c *client, reverify bool) string {
		t.Helper()
		c.send("register", map[string]any{"phone_number": phone, "reverify": reverify})
		got := map[string]frame{}
		for range 2 { // the inbox's copy and the answer, in either order
			f := c.next()
			got[f.Event] = f
		}
		inbox, ok := got["dev_sms"]
		if _, answered := got["code_generated"]; !ok || !answered {
			t.Fatalf("the asking tab got %v, want dev_sms and code_generated", got)
		}
		code := faketwilio.Code(inbox.Data["body"].(string))
		if code == "" || inbox.Data["phone_number"] != phone {
			t.Fatalf("dev inbox frame %v", inbox.Data)
		}
		return code
	}

	b := dial(t, ts.URL) // subscribed to the number before any text
	b.send("resume", map[string]any{"phone_number": phone})
	b.expect("reset", "not_requested")
	a := dial(t, ts.URL)
	code := askFor(a, false)
	a.verify(phone, code)
	verifiedWithToken(t, a)
	nextIsVerifiedWithoutToken(t, b, phone)

	// The other way round: a's text is not b's, and b's is not a's.
	code = askFor(b, true)
	b.verify(phone, code)
	verifiedWithToken(t, b)
	nextIsVerifiedWithoutToken(t, a, phone)
}

// waitForText waits until some line of b contains s.
func waitForText(t *testing.T, b *lineBuffer, s string) {
	t.Helper()
	deadline := time.After(10 * time.Second)
	for !strings.Contains(b.String(), s) {
		select {
		case <-b.added:
		case <-deadline:
			t.Fatalf("no line contains %q in:\n%s", s, b)
		}
	}
}

func TestDevelopmentModeSaysAtStartThatEveryTokenIsADevelopmentToken(t *testing.T) {
	// startLog is what a server logs from its start to its stop.
	startLog := func(env map[string]string) string {
		ts := startServer(t, nil, env)
		ts.stop()
		waitForText(t, ts.logs, "shutting down") // every start-up line has been read
		return ts.logs.String()
	}
	dev := grep(startLog(map[string]string{"TWILIO_ACCOUNT_SID": ""}), "development token")
	if !strings.Contains(dev, "every token") {
		t.Fatalf("development mode does not say at start that every token is a development token; it says %q", dev)
	}
	if l := grep(startLog(nil), "development token"); l != "" {
		t.Fatalf("with Twilio configured the logs say: %s", l)
	}
}

func TestTheDemoShopIsServedWithTwilioOnlyWithTheDemoFlag(t *testing.T) {
	without := startServer(t, nil, nil)
	if s := demoStatus(t, without.URL, "GET", "/demo/embed"); s != 404 {
		t.Fatalf("with Twilio and no -demo, GET /demo/embed: %d, want 404", s)
	}
	with := startServer(t, []string{"-demo"}, nil)
	for _, r := range [][2]string{{"GET", "/demo/embed"}, {"GET", "/demo.css"}, {"POST", "/demo/embed"}} {
		if s := demoStatus(t, with.URL, r[0], r[1]); s != 200 {
			t.Errorf("with Twilio and -demo, %s %s: %d, want 200", r[0], r[1], s)
		}
	}
}

const apiKeyLine = "API key for /api/siteverify"

func TestTheGeneratedAPIKeyIsPrintedOnceAndByTheAPIKeyCommand(t *testing.T) {
	needsFile(t)
	path := filepath.Join(t.TempDir(), "keys.db")
	first := startServer(t, []string{"-db=" + path}, nil)
	line := first.stdout.waitFor(t, apiKeyLine)
	key := line[strings.LastIndex(line, " ")+1:]
	if len(key) < 32 || strings.Contains(key, ":") {
		t.Fatalf("no key at the end of %q", line)
	}
	first.stop()

	second := startServer(t, []string{"-db=" + path}, nil)
	second.stop()
	waitForText(t, second.logs, "shutting down")
	if !strings.Contains(second.logs.String(), "kept in the database; `verifier api-key` prints it") {
		t.Fatalf("the second start does not say where the key is:\n%s", second.logs)
	}
	for _, out := range []*lineBuffer{second.stdout, second.logs} {
		if l := grep(out.String(), key); l != "" {
			t.Fatalf("the second start printed the key again: %s", l)
		}
	}
	if l := grep(second.stdout.String(), apiKeyLine); l != "" {
		t.Fatalf("the second start printed %q", l)
	}

	apiKey := func(env map[string]string) string {
		t.Helper()
		var out, errOut bytes.Buffer
		err := run(context.Background(), []string{"api-key", "-db=" + path}, func(k string) string { return env[k] }, &out, &errOut)
		if err != nil {
			t.Fatalf("verifier api-key: %v (%s)", err, errOut.String())
		}
		return out.String()
	}
	if got := apiKey(nil); got != key+"\n" {
		t.Fatalf("verifier api-key printed %q, want %q", got, key+"\n")
	}
	if got := apiKey(map[string]string{"VERIFIER_API_KEY": "chosen-by-the-operator"}); got != "chosen-by-the-operator\n" {
		t.Fatalf("verifier api-key with VERIFIER_API_KEY printed %q", got)
	}
	// The key it printed is the one the server checks.
	third := startServer(t, []string{"-db=" + path}, nil)
	resp, err := http.PostForm(third.URL+"/api/siteverify", url.Values{"secret": {key}, "token": {"not-a-token"}})
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if strings.Contains(string(body), "invalid-input-secret") {
		t.Fatalf("the printed key is refused: %s", body)
	}
}

func TestAShortVerifierSecretStopsTheStart(t *testing.T) {
	env := map[string]string{"VERIFIER_SECRET": strings.Repeat("s", minSecretBytes-1)}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	pr, pw := io.Pipe()
	out := newLineBuffer()
	go out.consume(pr)
	done := make(chan error, 1)
	go func() {
		var errOut bytes.Buffer
		done <- run(ctx, []string{"-addr=127.0.0.1:0", "-db=" + filepath.Join(t.TempDir(), "v.db")},
			func(k string) string { return env[k] }, pw, &errOut)
		pw.Close()
	}()
	deadline := time.After(10 * time.Second)
	for {
		select {
		case err := <-done:
			if err == nil || !strings.Contains(err.Error(), "VERIFIER_SECRET") {
				t.Fatalf("run with a %d-byte secret: %v, want an error naming VERIFIER_SECRET", minSecretBytes-1, err)
			}
			if l := grep(out.String(), "verifier listening"); l != "" {
				t.Fatalf("it served first: %s", l)
			}
			return
		case <-out.added:
			if l := grep(out.String(), "verifier listening"); l != "" {
				cancel()
				<-done
				t.Fatalf("a %d-byte VERIFIER_SECRET was accepted: %s", minSecretBytes-1, l)
			}
		case <-deadline:
			cancel()
			t.Fatal("run neither failed nor served within 10 s")
		}
	}
}

// startGuarded is startServer for a start-up that may panic: the panic
// fails this test instead of taking the whole test binary down.
func startGuarded(t *testing.T, args []string) *testServer {
	t.Helper()
	fake := faketwilio.New(fakeSID, fakeToken)
	twilioSrv := httptest.NewServer(fake)
	t.Cleanup(twilioSrv.Close)
	vars := map[string]string{"TWILIO_ACCOUNT_SID": fakeSID, "TWILIO_AUTH_TOKEN": fakeToken,
		"TWILIO_FROM_NUMBER": "+15005550006", "TWILIO_API_URL": twilioSrv.URL}
	args = append([]string{"-addr=127.0.0.1:0", "-db=" + filepath.Join(t.TempDir(), "v.db")}, args...)
	ctx, cancel := context.WithCancel(context.Background())
	pr, pw := io.Pipe()
	out := newLineBuffer()
	go out.consume(pr)
	done, panicked, finished := make(chan error, 1), make(chan any, 1), make(chan struct{})
	go func() {
		defer close(finished)
		defer pw.Close()
		defer func() {
			if r := recover(); r != nil {
				panicked <- r
			}
		}()
		done <- run(ctx, args, func(k string) string { return vars[k] }, pw, io.Discard)
	}()
	ts := &testServer{Twilio: fake, stdout: out, logs: newLineBuffer()}
	ts.stop = sync.OnceFunc(func() {
		cancel()
		select {
		case <-finished:
		case <-time.After(15 * time.Second):
			t.Error("server did not stop within 15 s")
		}
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("run: %v", err)
			}
		default:
		}
	})
	t.Cleanup(ts.stop)
	deadline := time.After(10 * time.Second)
	for {
		if l := grep(out.String(), "verifier listening on "); l != "" {
			ts.URL = strings.TrimPrefix(l, "verifier listening on ")
			waitHealthy(t, ts.URL)
			return ts
		}
		select {
		case r := <-panicked:
			t.Fatalf("run %v panicked at start-up: %v", args, r)
		case err := <-done:
			t.Fatalf("run %v returned at start-up: %v", args, err)
		case <-out.added:
		case <-deadline:
			t.Fatalf("run %v did not start within 10 s", args)
		}
	}
}

func TestMetricsAddrMovesMetricsOffThePublicListener(t *testing.T) {
	ts := startGuarded(t, []string{"-metrics-addr=127.0.0.1:0"})
	resp, err := http.Get(ts.URL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNotFound {
		t.Fatalf("public /metrics with -metrics-addr: %d, want 404", resp.StatusCode)
	}
	side := strings.TrimPrefix(ts.stdout.waitFor(t, "verifier side listener on http://"), "verifier side listener on ")
	if side == ts.URL {
		t.Fatalf("the side listener is the public one: %s", side)
	}
	if m := scrape(t, side); !strings.Contains(m, "# TYPE verifier_connections_open gauge") || !strings.Contains(m, "go_goroutines") {
		t.Fatalf("side /metrics is not the Prometheus text:\n%.500s", m)
	}
}

// sweepChannel accepts every delivery and sends nothing.
type sweepChannel struct{}

func (sweepChannel) Deliver(context.Context, verify.Delivery) error { return nil }

// expiredPub records the numbers pushed as expired.
type expiredPub struct {
	mu      sync.Mutex
	expired map[string]int
	other   []verify.Outcome
}

func (p *expiredPub) Publish(phone string, o verify.Outcome, except string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if o.Kind == verify.Expired && o.Phone == phone && except == "" {
		p.expired[phone]++
		return
	}
	p.other = append(p.other, o)
}
func (p *expiredPub) Tell(string, verify.Outcome) {}

// TestOneSweepClearsAWholeBacklogFromTheRealStore is the sweeper on bbolt
// (package verify cannot import db: db imports verify).
func TestOneSweepClearsAWholeBacklogFromTheRealStore(t *testing.T) {
	const n = 2000
	store, err := db.Open(filepath.Join(t.TempDir(), "v.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	start := time.Date(2026, 11, 22, 12, 0, 0, 0, time.UTC)
	var mu sync.Mutex
	now := start
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	cfg := verify.DefaultConfig()
	cfg.Limits = verify.Limits{}
	pub := &expiredPub{expired: map[string]int{}}
	svc, err := verify.NewService(cfg, verify.Deps{Store: store, Channels: verify.Channels{"sms": sweepChannel{}},
		Pub: pub, Now: clock})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	number := func(i int) string {
		areas := []int{415, 212, 312, 617, 206}
		return fmt.Sprintf("+1%d555%04d", areas[i%len(areas)], 1000+i/len(areas))
	}
	// Registered from many goroutines at once, so the store batches the
	// writes; every code expires at the same instant.
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for w := range 50 {
		wg.Go(func() {
			for i := w; i < n; i += 50 {
				who := verify.Requester{ConnID: fmt.Sprint("c", i), ClientAddr: "192.0.2.1"}
				o, err := svc.Register(ctx, who, verify.Registration{Phone: number(i)})
				if err == nil && o.Kind != verify.CodeSent {
					err = fmt.Errorf("register %s: %v", number(i), o.Kind)
				}
				if err != nil {
					errs <- err
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	if listed, _ := store.Expired(ctx, start.Add(cfg.CodeTTL), 2*n); len(listed) != n {
		t.Fatalf("the store lists %d expiring records, want %d", len(listed), n)
	}

	mu.Lock()
	now = start.Add(cfg.CodeTTL)
	mu.Unlock()
	removed, err := svc.SweepExpired(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if removed != n || len(pub.expired) != n || len(pub.other) != 0 {
		t.Fatalf("one sweep removed %d and pushed %d numbers as expired (%d other pushes), want %d", removed, len(pub.expired), len(pub.other), n)
	}
	for i := range n {
		if pub.expired[number(i)] != 1 {
			t.Fatalf("%s pushed as expired %d times", number(i), pub.expired[number(i)])
		}
		if rec, err := store.Get(ctx, number(i)); err != nil || !rec.Empty() {
			t.Fatalf("%s after the sweep: %+v, %v; want no record", number(i), rec, err)
		}
	}
	if listed, _ := store.Expired(ctx, now.Add(24*time.Hour), 10); len(listed) != 0 {
		t.Fatalf("the store still lists %v", listed)
	}
}
