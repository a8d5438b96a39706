package main

import (
	"errors"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"verifier/sms/faketwilio"
)

const phone = "+14155552671"

func TestFullFlowOverWebSocketWithTwilio(t *testing.T) {
	ts := startServer(t, nil, nil)
	c := dial(t, ts.URL)
	c.register("(415) 555-2671")
	gen := c.expect("code_generated", "")
	if gen.Data["phone_number"] != phone || gen.Data["code_length"] != 6.0 || gen.Data["expires_in"] != 600.0 {
		t.Fatalf("code_generated %v", gen.Data)
	}
	msgs := ts.Twilio.To(phone)
	if len(msgs) != 1 || msgs[0].From != "+15005550006" {
		t.Fatalf("twilio got %+v", msgs)
	}
	c.verify(phone, faketwilio.Code(msgs[0].Body))
	v := c.expect("verified", "")
	if v.Data["phone_number"] != phone || v.Data["token"] == "" || v.Data["verified_at"] == "" {
		t.Fatalf("verified %v", v.Data)
	}
	c.register(phone)
	if f := c.expect("update", "already_verified"); f.Data["message"] != "You have already verified +14155552671!" {
		t.Fatalf("message %q", f.Data["message"])
	}
}

func TestTheCodeNeverTravelsToTheBrowserWhenTwilioIsConfigured(t *testing.T) {
	ts := startServer(t, nil, nil)
	c := dial(t, ts.URL)
	c.register(phone)
	c.ws.SetReadDeadline(time.Now().Add(5 * time.Second))
	_, raw, err := c.ws.ReadMessage()
	if err != nil {
		t.Fatal(err)
	}
	if code := ts.codeFor(t, phone); strings.Contains(string(raw), code) {
		t.Fatalf("frame %s carries the code %s", raw, code)
	}
}

func TestLogsNeverHoldACodeOrAFullNumberWhenTwilioIsConfigured(t *testing.T) {
	ts := startServer(t, []string{"-max-attempts=2"}, nil)
	c, code := ts.requestCode(t, phone)
	c.verify(phone, wrongCode(code))
	c.next()
	c.verify(phone, code)
	c.next()
	ts.stop()
	logs := ts.logs.String()
	if !strings.Contains(logs, "+141****671") {
		t.Fatalf("expected masked numbers in the logs, got:\n%s", logs)
	}
	if strings.Contains(logs, code) || strings.Contains(logs, phone) {
		t.Fatalf("logs leak the code %s or the number:\n%s", code, logs)
	}
}

func TestConsoleSenderPrintsTextsWhenTwilioIsNotConfigured(t *testing.T) {
	ts := startServer(t, []string{"-public-url=https://verify.example.com"}, map[string]string{"TWILIO_ACCOUNT_SID": ""})
	c := dial(t, ts.URL)
	c.register(phone)
	// The dev inbox's copy and the answer come in either order.
	got := map[string]frame{}
	for range 2 {
		f := c.next()
		got[f.Event] = f
	}
	inbox, ok := got["dev_sms"]
	if _, answered := got["code_generated"]; !ok || !answered {
		t.Fatalf("got %v, want dev_sms and code_generated", got)
	}
	line := ts.stdout.waitFor(t, "DEV SMS to +14155552671: Your verification code is: ")
	code := faketwilio.Code(line)
	if !strings.HasSuffix(line, " | @verify.example.com #"+code) {
		t.Fatalf("line %q lacks the WebOTP part", line)
	}
	if inbox.Data["phone_number"] != phone || faketwilio.Code(inbox.Data["body"].(string)) != code {
		t.Fatalf("dev inbox got %v", inbox.Data)
	}
	c.verify(phone, code)
	c.expect("verified", "")
	if n := len(ts.Twilio.Messages()); n != 0 {
		t.Fatalf("twilio got %d messages with no credentials", n)
	}
}

func TestBadFramesGetBadRequestAndTheConnectionStaysOpen(t *testing.T) {
	ts := startServer(t, nil, nil)
	c := dial(t, ts.URL)
	for _, raw := range []string{
		`not json`,
		`{"event":`,
		`[]`,
		`{"event":"launch_missiles","data":{}}`,
		`{"data":{"phone_number":"+14155552671"}}`,
		`{"event":"register"}`,
		`{"event":"register","data":"+14155552671"}`,
		`{"event":"register","data":{}}`,
		`{"event":"register","data":{"phone_number":14155552671}}`,
		`{"event":"verify","data":{"phone_number":"+14155552671"}}`,
		`{"event":42,"data":{}}`,
	} {
		c.sendRaw(raw)
		if f := c.expect("update", "bad_request"); f.Data["message"] == "" {
			t.Fatalf("%s: no message", raw)
		}
	}
	c.register(phone)
	c.expect("code_generated", "")
}

func TestOversizedFrameClosesWith1009(t *testing.T) {
	ts := startServer(t, nil, nil)
	c := dial(t, ts.URL)
	c.sendRaw(`{"event":"register","data":{"phone_number":"` + strings.Repeat("1", 5000) + `"}}`)
	c.ws.SetReadDeadline(time.Now().Add(5 * time.Second))
	_, _, err := c.ws.ReadMessage()
	var ce *websocket.CloseError
	if !errors.As(err, &ce) || ce.Code != websocket.CloseMessageTooBig {
		t.Fatalf("err = %v, want close 1009", err)
	}
}

func TestOriginCheck(t *testing.T) {
	ts := startServer(t, []string{"-allowed-origins=https://shop.example"}, nil)
	for origin, want := range map[string]int{
		"https://evil.example": http.StatusForbidden,
		"null":                 http.StatusForbidden,
		"https://shop.example": http.StatusSwitchingProtocols,
		ts.URL:                 http.StatusSwitchingProtocols,
	} {
		ws, resp, err := websocket.DefaultDialer.Dial(wsURL(ts.URL), http.Header{"Origin": {origin}})
		if resp == nil || resp.StatusCode != want {
			t.Errorf("origin %s: %v, %v; want %d", origin, resp, err, want)
		}
		if ws != nil {
			ws.Close()
		}
	}
}

func TestInvalidNumbersAreRefusedBeforeAnythingIsSent(t *testing.T) {
	ts := startServer(t, nil, nil)
	c := dial(t, ts.URL)
	for _, n := range []string{"12345", "phone", "+1 555", "+999999999999999999"} {
		c.register(n)
		c.expect("update", "invalid_phone")
	}
	if n := len(ts.Twilio.Messages()); n != 0 {
		t.Fatalf("%d texts sent to invalid numbers", n)
	}
}

func TestTwilioRefusingTheNumberGivesInvalidPhoneAndAllowsACorrection(t *testing.T) {
	ts := startServer(t, nil, nil)
	ts.Twilio.SetFailure(&faketwilio.Failure{HTTPStatus: 400, Code: 21211})
	c := dial(t, ts.URL)
	c.register(phone)
	c.expect("update", "invalid_phone")
	ts.Twilio.SetFailure(nil)
	c.register(phone) // at once: nothing was left pending
	c.expect("code_generated", "")
}

func TestTwilioRefusingTheRequestGivesSendFailedAndLeavesNothingPending(t *testing.T) {
	ts := startServer(t, nil, nil)
	ts.Twilio.SetFailure(&faketwilio.Failure{HTTPStatus: 400, Code: 21606}) // "From" cannot send: nothing sent
	c := dial(t, ts.URL)
	c.register(phone)
	c.expect("update", "send_failed")
	c.verify(phone, "123456")
	c.expect("update", "not_requested")
	ts.Twilio.SetFailure(nil)
	c.register(phone)
	c.expect("code_generated", "")
}

// TestTwilioFailingWithA5xxKeepsTheCodeInCaseTheTextArrives: Twilio may
// have sent the text before failing, so the code stays pending (and
// counted) and a new one may be asked for at once.
func TestTwilioFailingWithA5xxKeepsTheCodeInCaseTheTextArrives(t *testing.T) {
	ts := startServer(t, nil, nil)
	ts.Twilio.SetFailure(&faketwilio.Failure{HTTPStatus: 500})
	c := dial(t, ts.URL)
	c.register(phone)
	if f := c.expect("update", "send_failed"); !strings.Contains(f.Data["message"].(string), "may still arrive") {
		t.Fatalf("message %q does not say the text may still arrive", f.Data["message"])
	}
	c.verify(phone, "000000")
	c.expect("update", "wrong_code") // a code is pending
	ts.Twilio.SetFailure(nil)
	c.register(phone) // no resend wait
	c.expect("code_generated", "")
}

func TestWrongCodesThenTooManyAttempts(t *testing.T) {
	ts := startServer(t, []string{"-max-attempts=3"}, nil)
	c, code := ts.requestCode(t, phone)
	wrong := wrongCode(code)
	c.verify(phone, wrong)
	if f := c.expect("update", "wrong_code"); f.Data["attempts_left"] != 2.0 {
		t.Fatalf("attempts_left %v", f.Data["attempts_left"])
	}
	c.verify(phone, wrong)
	c.expect("update", "wrong_code")
	c.verify(phone, wrong)
	c.expect("reset", "too_many_attempts")
	c.verify(phone, code)
	c.expect("update", "not_requested")
}

func TestExpiryIsPushedAndAnsweredToALateVerify(t *testing.T) {
	ts := startServer(t, []string{"-code-ttl=1s"}, nil)
	c, code := ts.requestCode(t, phone)
	if f := c.expect("reset", "expired"); f.Data["phone_number"] != phone {
		t.Fatalf("reset %v", f.Data)
	}
	c.verify(phone, code)
	c.expect("update", "not_requested")

	// A verify that arrives before the sweeper is told expired too.
	ts2 := startServer(t, []string{"-code-ttl=1s"}, nil)
	c2, code := ts2.requestCode(t, phone)
	time.Sleep(1100 * time.Millisecond)
	c2.verify(phone, code)
	f := c2.next()
	if f.Event != "reset" || f.reason() != "expired" {
		t.Fatalf("late verify got %s %v", f.Event, f.Data)
	}
}

func TestResendTooSoonThenAfterTheWait(t *testing.T) {
	ts := startServer(t, []string{"-resend-after=500ms"}, nil)
	c, first := ts.requestCode(t, phone)
	c.register(phone)
	if f := c.expect("update", "already_requested"); f.Data["resend_in"] != 1.0 {
		t.Fatalf("resend_in %v", f.Data["resend_in"])
	}
	if n := len(ts.Twilio.To(phone)); n != 1 {
		t.Fatalf("%d texts, want 1", n)
	}
	time.Sleep(600 * time.Millisecond)
	c.register(phone)
	c.expect("code_generated", "")
	second := ts.codeFor(t, phone)
	if first != second {
		c.verify(phone, first)
		c.expect("update", "wrong_code")
	}
	c.verify(phone, second)
	c.expect("verified", "")
}

func TestRateLimitedRegisterSaysWhenToRetry(t *testing.T) {
	ts := startServer(t, []string{"-max-sms-per-ip=2"}, nil)
	c := dial(t, ts.URL)
	for i := range 2 {
		c.register(numberN(i))
		c.expect("code_generated", "")
	}
	c.register(numberN(2))
	if f := c.expect("update", "rate_limited"); f.Data["retry_after"].(float64) <= 0 {
		t.Fatalf("retry_after %v", f.Data["retry_after"])
	}
	if n := len(ts.Twilio.Messages()); n != 2 {
		t.Fatalf("%d texts, want 2", n)
	}
}

func TestTwoConnectionsOnOneNumberStayInStep(t *testing.T) {
	ts := startServer(t, nil, nil)
	tab1, tab2 := dial(t, ts.URL), dial(t, ts.URL)
	tab1.register(phone)
	tab1.expect("code_generated", "")
	tab2.register(phone)
	tab2.expect("update", "already_requested")
	tab2.verify(phone, ts.codeFor(t, phone))
	if f := tab2.expect("verified", ""); f.Data["token"] == nil {
		t.Fatal("the typing tab got no token")
	}
	if f := tab1.expect("verified", ""); f.Data["token"] != nil {
		t.Fatal("the other tab got the token")
	}
}

func TestTooManyAttemptsResetsEveryTab(t *testing.T) {
	ts := startServer(t, []string{"-max-attempts=1"}, nil)
	tab1, code := ts.requestCode(t, phone)
	tab2 := dial(t, ts.URL)
	tab2.register(phone)
	tab2.expect("update", "already_requested")
	tab1.verify(phone, wrongCode(code))
	tab1.expect("reset", "too_many_attempts")
	tab2.expect("reset", "too_many_attempts")
}

func TestResumePutsAReconnectedPageBackOnTheCodeForm(t *testing.T) {
	ts := startServer(t, nil, nil)
	c, code := ts.requestCode(t, phone)
	c.ws.Close()

	again := dial(t, ts.URL)
	again.send("resume", map[string]any{"phone_number": phone})
	if f := again.expect("update", "code_pending"); f.Data["code_length"] != 6.0 {
		t.Fatalf("code_pending %v", f.Data)
	}
	again.verify(phone, code)
	again.expect("verified", "")
	if n := len(ts.Twilio.To(phone)); n != 1 {
		t.Fatalf("%d texts, want 1", n)
	}
}

func TestTwoHundredConcurrentClientsAllVerifyWithOneTextEach(t *testing.T) {
	ts := startServer(t, noLimits, nil)
	const n = 200
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs <- flow(ts, numberN(i))
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Error(err)
		}
	}
	for i := range n {
		if got := len(ts.Twilio.To(numberN(i))); got != 1 {
			t.Errorf("%s got %d texts", numberN(i), got)
		}
	}
}

// flow runs one person's whole verification and reports what went wrong.
func flow(ts *testServer, phone string) error {
	ws, _, err := websocket.DefaultDialer.Dial(wsURL(ts.URL), nil)
	if err != nil {
		return err
	}
	defer ws.Close()
	ws.SetReadDeadline(time.Now().Add(30 * time.Second))
	step := func(event string, data map[string]any, want string) (frame, error) {
		if err := ws.WriteJSON(map[string]any{"event": event, "data": data}); err != nil {
			return frame{}, err
		}
		var f frame
		if err := ws.ReadJSON(&f); err != nil {
			return f, err
		}
		if f.Event != want {
			return f, errors.New(phone + ": " + event + " got " + f.Event + " " + f.reason())
		}
		return f, nil
	}
	if _, err := step("register", map[string]any{"phone_number": phone}, "code_generated"); err != nil {
		return err
	}
	_, err = step("verify", map[string]any{"phone_number": phone, "code": ts.Twilio.LastCode(phone)}, "verified")
	return err
}

func TestHealthzAndPage(t *testing.T) {
	ts := startServer(t, nil, nil)
	resp, err := http.Get(ts.URL + "/")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 || !strings.Contains(resp.Header.Get("Content-Security-Policy"), "frame-ancestors 'self'") {
		t.Fatalf("page: %d %v", resp.StatusCode, resp.Header)
	}
	body, _ := io.ReadAll(resp.Body)
	for _, id := range []string{"phone_number", "register_button", "code", "verify_button", "update", "register_instructions", "verify_instructions"} {
		if !strings.Contains(string(body), `id="`+id+`"`) {
			t.Errorf("page lacks #%s", id)
		}
	}
}
