package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"verifier/channel"
	"verifier/db"
	"verifier/server"
	"verifier/sms"
	"verifier/sms/faketwilio"
	"verifier/verify"
)

// Faults, abuse, delivery reports and what the operator sees (issue 5).

// TestSlowTwilioFailsOnlyItsOwnSendAndKeepsItsCode: a timeout may have sent
// the text, so its code stays valid (a late text still works) while the
// person may ask for a new one at once.
func TestSlowTwilioFailsOnlyItsOwnSendAndKeepsItsCode(t *testing.T) {
	ts := startServer(t, append([]string{"-sms-timeout=2s"}, noLimits...), nil)
	slow := numberN(10)
	// Twilio holds texts to one number past the sender's timeout.
	ts.Twilio.SetFailure(&faketwilio.Failure{To: slow, Delay: 30 * time.Second, HTTPStatus: 500})

	stuck := dial(t, ts.URL)
	stuck.register(slow)
	answered := make(chan frame, 1)
	go func() {
		stuck.ws.SetReadDeadline(time.Now().Add(20 * time.Second))
		var f frame
		stuck.ws.ReadJSON(&f)
		answered <- f
	}()

	// Meanwhile other people go through the whole flow undisturbed.
	for i := range 5 {
		n := numberN(20 + i)
		c, code := ts.requestCode(t, n)
		c.verify(n, code)
		c.expect("verified", "")
		select {
		case f := <-answered:
			t.Fatalf("the slow send answered (%v) before another person's flow %d ended", f, i)
		default:
		}
	}

	f := <-answered
	if f.Event != "update" || f.reason() != "send_failed" || !strings.Contains(f.Data["message"].(string), "may still arrive") {
		t.Fatalf("slow send answered %s %v, want update send_failed saying the text may still arrive", f.Event, f.Data)
	}
	stuck.send("resume", map[string]any{"phone_number": slow})
	stuck.expect("update", "code_pending") // a text that arrives late still works
	ts.Twilio.SetFailure(nil)
	stuck.register(slow) // at once: no resend wait after an uncertain send
	stuck.expect("code_generated", "")
}

func TestTwilioDownGivesSendFailedAndLeavesNothingPending(t *testing.T) {
	// Nothing listens on port 1: every call is refused.
	ts := startServer(t, noLimits, map[string]string{"TWILIO_API_URL": "http://127.0.0.1:1"})
	c := dial(t, ts.URL)
	for i := range 3 {
		c.register(numberN(i))
		c.expect("update", "send_failed")
		c.send("resume", map[string]any{"phone_number": numberN(i)})
		c.expect("reset", "not_requested")
	}
	metrics := scrape(t, ts.URL)
	if !strings.Contains(metrics, `verifier_sms_total{code="error",result="failed"} 3`) {
		t.Fatalf("metrics lack the 3 failed texts:\n%s", grep(metrics, "verifier_sms_total"))
	}
}

// TestADiskRefusingWritesSendsNoText wires the real store, the real Twilio
// client and the fake Twilio, then closes the database under the rules.
func TestADiskRefusingWritesSendsNoText(t *testing.T) {
	fake := faketwilio.New(fakeSID, fakeToken)
	twilioSrv := httptest.NewServer(fake)
	defer twilioSrv.Close()
	sender, err := sms.NewTwilio(sms.TwilioConfig{AccountSID: fakeSID, AuthToken: fakeToken,
		From: "+15005550006", APIURL: twilioSrv.URL})
	if err != nil {
		t.Fatal(err)
	}
	store, err := db.Open(filepath.Join(t.TempDir(), "v.db"))
	if err != nil {
		t.Fatal(err)
	}
	texter, err := channel.NewSMS(sender, map[string]string{"en": "Your code: {code}"}, "")
	if err != nil {
		t.Fatal(err)
	}
	svc, err := verify.NewService(verify.DefaultConfig(), verify.Deps{Store: store,
		Channels: verify.Channels{"sms": texter}, Pub: nopPublisher{}})
	if err != nil {
		t.Fatal(err)
	}
	who := verify.Requester{ConnID: "c1", ClientAddr: "127.0.0.1"}
	if o, err := svc.Register(context.Background(), who, verify.Registration{Phone: numberN(1)}); err != nil || o.Kind != verify.CodeSent {
		t.Fatalf("healthy store: %v, %v", o, err)
	}
	health := server.Healthz(store.Ping, slog.New(slog.DiscardHandler))

	store.Close()
	// An internal error: the server answers it as update send_failed.
	if o, err := svc.Register(context.Background(), who, verify.Registration{Phone: numberN(2)}); err == nil {
		t.Fatalf("register on a dead store: %v, want an error", o)
	}
	if o, err := svc.Verify(context.Background(), who, numberN(1), fake.LastCode(numberN(1))); err == nil {
		t.Fatalf("verify on a dead store: %v, want an error", o)
	}
	if n := len(fake.To(numberN(2))); n != 0 {
		t.Fatalf("%d texts for a code that was never stored", n)
	}
	w := httptest.NewRecorder()
	health.ServeHTTP(w, httptest.NewRequest("GET", "/healthz", nil))
	if w.Code != http.StatusServiceUnavailable {
		t.Fatalf("healthz with the database closed: %d", w.Code)
	}
}

type nopPublisher struct{}

func (nopPublisher) Publish(string, verify.Outcome, string) {}
func (nopPublisher) Tell(string, verify.Outcome)            {}

func TestDeliveryReportsReachThePageAndForgedOnesAreRefused(t *testing.T) {
	const public = "https://verify.example.com"
	ts := startServer(t, []string{"-public-url=" + public}, nil)
	c, _ := ts.requestCode(t, phone)
	callback := ts.Twilio.To(phone)[0].StatusCallback
	if callback != public+"/twilio/status" {
		t.Fatalf("StatusCallback %q", callback)
	}
	report := url.Values{"MessageSid": {"SM1"}, "MessageStatus": {"undelivered"}, "To": {phone},
		"ErrorCode": {"30003"}, "AccountSid": {fakeSID}}
	post := func(form url.Values, signature string) int {
		req, _ := http.NewRequest("POST", ts.URL+"/twilio/status", strings.NewReader(form.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		if signature != "" {
			req.Header.Set("X-Twilio-Signature", signature)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	forged := url.Values{"MessageStatus": {"delivered"}, "To": {phone}}
	for name, sig := range map[string]string{
		"unsigned":          "",
		"wrong token":       faketwilio.Sign("nottheauthtoken", callback, forged),
		"signed for r.Host": faketwilio.Sign(fakeToken, ts.URL+"/twilio/status", forged),
	} {
		if got := post(forged, sig); got != http.StatusForbidden {
			t.Fatalf("%s report: %d, want 403", name, got)
		}
	}
	if got := post(report, faketwilio.Sign(fakeToken, callback, report)); got != http.StatusNoContent {
		t.Fatalf("signed report: %d, want 204", got)
	}
	// The first thing the page hears is the real report: nothing forged got through.
	f := c.expect("update", "sms_failed")
	if f.Data["phone_number"] != phone || f.Data["error_code"] != "30003" {
		t.Fatalf("report pushed as %v", f.Data)
	}
}

// dialFrom opens a WebSocket from a loopback source address, as a script
// spreading over addresses would.
func dialFrom(t *testing.T, base, source string) *client {
	t.Helper()
	d := websocket.Dialer{NetDialContext: (&net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(source)}}).DialContext}
	ws, _, err := d.Dial(wsURL(base), http.Header{"Origin": {base}})
	if err != nil {
		t.Fatalf("dial from %s: %v", source, err)
	}
	t.Cleanup(func() { ws.Close() })
	return &client{t: t, ws: ws}
}

func TestAScriptRegisteringManyNumbersFromOneAddressIsStopped(t *testing.T) {
	ts := startServer(t, []string{"-max-sms-per-ip=5"}, nil)
	stopped := 0
	for i := range 12 { // a fresh connection each time, numbers in different ranges
		c := dial(t, ts.URL)
		c.register(fmt.Sprintf("+1415555%d%03d", i%10, i))
		if c.next().reason() == "rate_limited" {
			stopped++
		}
	}
	if stopped != 7 || len(ts.Twilio.Messages()) != 5 {
		t.Fatalf("%d stopped, %d texts; want 7 and 5", stopped, len(ts.Twilio.Messages()))
	}
	if m := scrape(t, ts.URL); !strings.Contains(m, `verifier_rate_limited_total{limit="client"} 7`) {
		t.Fatalf("metrics:\n%s", grep(m, "rate_limited"))
	}
}

func TestASweepAcrossANumberRangeIsStopped(t *testing.T) {
	// Every other limit lifted, and each request from its own address.
	args := []string{"-max-sms-per-minute=0", "-max-sms-per-hour=0", "-max-sms-per-ip=0",
		"-max-sms-per-number=0", "-max-sms-per-connection=0", "-max-sms-per-prefix=4"}
	ts := startServer(t, args, nil)
	stopped := 0
	for i := range 10 {
		c := dialFrom(t, ts.URL, fmt.Sprintf("127.0.0.%d", 10+i))
		c.register(fmt.Sprintf("+1415555%04d", 7000+i))
		if c.next().reason() == "rate_limited" {
			stopped++
		}
	}
	if stopped != 6 || len(ts.Twilio.Messages()) != 4 {
		t.Fatalf("%d stopped, %d texts; want 6 and 4", stopped, len(ts.Twilio.Messages()))
	}
	c := dial(t, ts.URL) // the next block is another range
	c.register("+14155558000")
	c.expect("code_generated", "")
}

func TestNumbersOutsideTheAllowedCountriesGetNoText(t *testing.T) {
	ts := startServer(t, []string{"-countries=US,CA"}, nil)
	c := dial(t, ts.URL)
	c.register("+44 20 7183 8750")
	if f := c.expect("update", "country_not_allowed"); f.Data["country"] != "GB" {
		t.Fatalf("answer %v", f.Data)
	}
	c.register("+1 613 555 0123") // Canada
	c.expect("code_generated", "")
	if n := len(ts.Twilio.Messages()); n != 1 {
		t.Fatalf("%d texts, want 1", n)
	}
	// By default only the -region's country is texted.
	ts = startServer(t, nil, nil)
	c = dial(t, ts.URL)
	c.register("+1 613 555 0123")
	c.expect("update", "country_not_allowed")
}

func TestBruteForcingCodesEndsAtMaxAttemptsForEveryCode(t *testing.T) {
	ts := startServer(t, []string{"-max-attempts=3", "-resend-after=0s"}, nil)
	c := dial(t, ts.URL)
	guess := 0
	for round := 0; ; round++ {
		c.register(phone)
		f := c.next()
		if f.reason() == "rate_limited" {
			// The per-number send limit (5 an hour) ends the attack: at
			// most 5 codes x 3 guesses an hour.
			if round != 5 {
				t.Fatalf("rate limited after %d codes, want 5", round)
			}
			break
		}
		if f.Event != "code_generated" {
			t.Fatalf("round %d: %v", round, f)
		}
		right := ts.codeFor(t, phone)
		for try := 1; ; try++ {
			g := fmt.Sprintf("%06d", guess)
			if guess++; g == right {
				continue
			}
			c.verify(phone, g)
			if f := c.next(); f.Event == "reset" {
				if f.reason() != "too_many_attempts" || try != 3 {
					t.Fatalf("round %d: reset %s after %d guesses", round, f.reason(), try)
				}
				break
			}
		}
		c.verify(phone, right) // too late: the code is void
		if round < 4 {
			c.expect("update", "not_requested")
			continue
		}
		// 5 codes x 3 wrong guesses spent the number's wrong-code budget
		// (-max-attempts x -max-sms-per-number): nothing works for an hour.
		c.expect("update", "rate_limited")
	}
}

func TestConnectionsBeyondTheCapAreRefused(t *testing.T) {
	ts := startServer(t, []string{"-max-connections=2"}, nil)
	dial(t, ts.URL)
	dial(t, ts.URL)
	_, resp, err := websocket.DefaultDialer.Dial(wsURL(ts.URL), nil)
	if err == nil || resp == nil || resp.StatusCode != http.StatusServiceUnavailable {
		t.Fatalf("third connection: %v %v, want 503", err, resp)
	}
	if m := scrape(t, ts.URL); !strings.Contains(m, "verifier_connections_open 2") {
		t.Fatalf("metrics:\n%s", grep(m, "connections_open"))
	}
}

func scrape(t *testing.T, base string) string {
	t.Helper()
	resp, err := http.Get(base + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 {
		t.Fatalf("/metrics: %d", resp.StatusCode)
	}
	return string(b)
}

func grep(text, substr string) string {
	var out []string
	for l := range strings.SplitSeq(text, "\n") {
		if strings.Contains(l, substr) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}

func TestMetricsCountAFlow(t *testing.T) {
	ts := startServer(t, nil, nil)
	c, code := ts.requestCode(t, phone)
	c.verify(phone, wrongCode(code))
	c.expect("update", "wrong_code")
	c.verify(phone, code)
	c.expect("verified", "")
	c.sendRaw("not json")
	c.expect("update", "bad_request")
	m := scrape(t, ts.URL)
	for _, want := range []string{
		"verifier_connections_open 1",
		`verifier_events_in_total{event="register"} 1`,
		`verifier_events_in_total{event="verify"} 2`,
		`verifier_events_in_total{event="bad_frame"} 1`,
		`verifier_answers_total{event="code_generated",reason=""} 1`,
		`verifier_answers_total{event="update",reason="wrong_code"} 1`,
		`verifier_answers_total{event="verified",reason=""} 1`,
		`verifier_sms_total{code="",result="sent"} 1`,
		"verifier_verification_seconds_count 1",
		"verifier_store_write_seconds_count 3",
		"go_goroutines",
	} {
		if !strings.Contains(m, want) {
			t.Errorf("metrics lack %q", want)
		}
	}
}

func TestJSONLogsNameTheEventAndReasonAndHideCodesAndNumbers(t *testing.T) {
	ts := startServer(t, []string{"-log-format=json", "-max-sms-per-ip=1"}, nil)
	c, code := ts.requestCode(t, phone)
	c.verify(phone, wrongCode(code))
	c.expect("update", "wrong_code")
	c.verify(phone, code)
	c.expect("verified", "")
	c.register(numberN(1))
	c.expect("update", "rate_limited")
	c.sendRaw("{}")
	c.expect("update", "bad_request")
	ts.stop()
	lines := strings.Split(strings.TrimSpace(ts.logs.String()), "\n")
	if len(lines) < 5 {
		t.Fatalf("only %d log lines", len(lines))
	}
	for _, l := range lines {
		var rec map[string]any
		if err := json.Unmarshal([]byte(l), &rec); err != nil {
			t.Fatalf("not JSON: %q", l)
		}
		if rec["event"] == nil || rec["reason"] == nil {
			t.Errorf("no event or reason: %s", l)
		}
		if strings.Contains(l, code) || strings.Contains(l, phone) || strings.Contains(l, numberN(1)) {
			t.Errorf("a code or a full number in the logs: %s", l)
		}
	}
}

func TestAClientSendingHeadersSlowlyIsCutOff(t *testing.T) {
	ts := startServer(t, []string{"-handshake-timeout=300ms"}, nil)
	conn, err := net.Dial("tcp", strings.TrimPrefix(ts.URL, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	// Headers begun and never finished, as a slowloris client does.
	fmt.Fprint(conn, "GET /ws HTTP/1.1\r\nHost: localhost\r\nUpgrade: websocket\r\n")
	conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	_, err = io.ReadAll(conn)
	if ne, ok := err.(net.Error); ok && ne.Timeout() {
		t.Fatal("the server still held the half-sent request after 5 s")
	}
}
