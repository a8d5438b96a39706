package main

import (
	"context"
	"io"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"verifier/sms/faketwilio"
	"verifier/verify"
)

const verifyService = "VA00000000000000000000000000000001"

// startVerifyServer runs the server with Twilio Verify as its code engine,
// on a database file the test may open once the server has stopped.
func startVerifyServer(t *testing.T, args ...string) (*testServer, string) {
	t.Helper()
	dbPath := filepath.Join(t.TempDir(), "verify.db")
	args = append(append([]string{"-db=" + dbPath}, noLimits...), args...)
	return startServer(t, args, map[string]string{"TWILIO_VERIFY_SERVICE_SID": verifyService}), dbPath
}

// storedRecord stops the server and reads the number's record from its file.
func storedRecord(t *testing.T, ts *testServer, dbPath, phone string) verify.Record {
	t.Helper()
	needsFile(t)
	ts.stop()
	store, err := openStore(dbPath, func(string) string { return "" }, quietLog())
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	rec, err := store.Get(context.Background(), phone)
	if err != nil {
		t.Fatal(err)
	}
	return rec
}

// verifyCode is the code Twilio Verify sent to phone by channel.
func verifyCode(t *testing.T, fake *faketwilio.Server, phone, channel string) string {
	t.Helper()
	msgs := fake.To(phone)
	if len(msgs) == 0 || msgs[len(msgs)-1].Verify != channel {
		t.Fatalf("messages to %s: %+v, want the last sent by Verify's %s", phone, msgs, channel)
	}
	return faketwilio.Code(msgs[len(msgs)-1].Body)
}

func TestVerifyEngineRightAndWrongCodesAndTheStoreMatches(t *testing.T) {
	ts, dbPath := startVerifyServer(t, "-max-wrong-codes-per-number=25")
	c := dial(t, ts.URL)
	c.register(phone)
	if f := c.expect("code_generated", ""); f.Data["channel"] != "sms" {
		t.Fatalf("code_generated %v", f.Data)
	}
	code := verifyCode(t, ts.Twilio, phone, "sms")
	c.verify(phone, wrongCode(code))
	if f := c.expect("update", "wrong_code"); f.Data["attempts_left"] != 4.0 {
		t.Fatalf("wrong code: %v", f.Data)
	}
	if n := ts.Twilio.VerifyChecks(phone); n != 1 {
		t.Fatalf("Verify counted %d wrong checks, want 1", n)
	}
	c.verify(phone, code)
	if f := c.expect("verified", ""); f.Data["token"] == "" {
		t.Fatalf("verified without a token: %v", f.Data)
	}
	if rec := storedRecord(t, ts, dbPath, phone); !rec.Verified() || rec.Pending != nil || rec.Wrong.Count != 1 {
		t.Fatalf("stored %+v: want verified, nothing pending, one wrong code", rec)
	}
}

func TestVerifyEngineCodesAreNeverInTheStore(t *testing.T) {
	ts, dbPath := startVerifyServer(t)
	c := dial(t, ts.URL)
	c.registerBy(phone, "call")
	c.expect("code_generated", "")
	code := verifyCode(t, ts.Twilio, phone, "call")
	rec := storedRecord(t, ts, dbPath, phone)
	if p := rec.Pending; p == nil || !p.Remote || p.Channel != "call" || p.TestCode != "" {
		t.Fatalf("stored pending %+v: want a remote call code", p)
	}
	if len(ts.Twilio.Calls()) != 0 || code == "" {
		t.Fatal("the call went through the Calls API, not Verify")
	}
}

func TestVerifyEnginesMaxChecksResetsThePage(t *testing.T) {
	ts, dbPath := startVerifyServer(t, "-max-attempts=10") // Verify's own cap of 5 comes first
	c := dial(t, ts.URL)
	c.register(phone)
	c.expect("code_generated", "")
	code := verifyCode(t, ts.Twilio, phone, "sms")
	for range 5 {
		c.verify(phone, wrongCode(code))
		c.expect("update", "wrong_code")
	}
	c.verify(phone, code) // 60202: not even the right code now
	c.expect("reset", "too_many_attempts")
	if rec := storedRecord(t, ts, dbPath, phone); rec.Pending != nil || rec.Verified() {
		t.Fatalf("stored %+v: want nothing pending, not verified", rec)
	}
}

func TestVerifyEnginesMaxSendsIsRateLimitedAndKeepsTheCode(t *testing.T) {
	ts, _ := startVerifyServer(t, "-resend-after=0s")
	ts.Twilio.VerifyMaxSends = 1
	c := dial(t, ts.URL)
	c.register(phone)
	c.expect("code_generated", "")
	code := verifyCode(t, ts.Twilio, phone, "sms")
	c.send("register", map[string]any{"phone_number": phone})
	if f := c.expect("update", "rate_limited"); f.Data["retry_after"] == nil {
		t.Fatalf("60203 without retry_after: %v", f.Data)
	}
	c.verify(phone, code)
	c.expect("verified", "")
}

func TestVerifyEnginesExpiredCodeResets(t *testing.T) {
	ts, dbPath := startVerifyServer(t)
	c := dial(t, ts.URL)
	c.register(phone)
	c.expect("code_generated", "")
	code := verifyCode(t, ts.Twilio, phone, "sms")
	ts.Twilio.ExpireVerification(phone)
	c.verify(phone, code) // 20404
	c.expect("reset", "expired")
	if rec := storedRecord(t, ts, dbPath, phone); rec.Pending != nil {
		t.Fatalf("stored %+v: the expired code is still pending", rec)
	}
}

func TestVerifyEngineRefusingTheNumberGivesInvalidPhone(t *testing.T) {
	for _, code := range []int{60200, 21211} {
		ts, dbPath := startVerifyServer(t)
		ts.Twilio.SetFailure(&faketwilio.Failure{HTTPStatus: 400, Code: code})
		c := dial(t, ts.URL)
		c.register(phone)
		c.expect("update", "invalid_phone")
		if rec := storedRecord(t, ts, dbPath, phone); rec.Pending != nil {
			t.Fatalf("%d: stored %+v, want nothing pending", code, rec)
		}
	}
}

func TestVerifyDownGivesSendFailedAndTheCodeSurvivesAFailedCheck(t *testing.T) {
	ts, _ := startVerifyServer(t)
	c := dial(t, ts.URL)
	ts.Twilio.SetFailure(&faketwilio.Failure{HTTPStatus: 503})
	c.register(phone)
	c.expect("update", "send_failed")

	ts.Twilio.SetFailure(nil)
	c.register(phone)
	c.expect("code_generated", "")
	code := verifyCode(t, ts.Twilio, phone, "sms")
	ts.Twilio.SetFailure(&faketwilio.Failure{HTTPStatus: 503, Code: 20500})
	c.verify(phone, code)
	if f := c.expect("update", "send_failed"); f.Data["message"] == "" {
		t.Fatalf("no message for a failed check: %v", f.Data)
	}
	ts.Twilio.SetFailure(nil)
	c.verify(phone, code)
	c.expect("verified", "")
}

func TestVerifyEngineFlowCompletesAfterSIGKILL(t *testing.T) {
	fake := faketwilio.New(fakeSID, fakeToken)
	twilio := httptest.NewServer(fake)
	defer twilio.Close()
	dbPath := filepath.Join(t.TempDir(), "v.db")
	env := []string{"TWILIO_VERIFY_SERVICE_SID=" + verifyService}

	p := startProcessEnv(t, dbPath, twilio.URL, env)
	c := dial(t, p.URL)
	c.register(phone)
	c.expect("code_generated", "")
	code := verifyCode(t, fake, phone, "sms")
	c.verify(phone, wrongCode(code))
	c.expect("update", "wrong_code")
	p.cmd.Process.Signal(syscall.SIGKILL)
	p.cmd.Wait()

	p = startProcessEnv(t, dbPath, twilio.URL, env)
	c = dial(t, p.URL)
	c.send("resume", map[string]any{"phone_number": phone})
	c.expect("update", "code_pending")
	c.verify(phone, wrongCode(code))
	if f := c.expect("update", "wrong_code"); f.Data["attempts_left"] != 3.0 {
		t.Fatalf("the wrong code before the kill was forgotten: %v", f.Data)
	}
	c.verify(phone, code)
	c.expect("verified", "")
	if n := len(fake.To(phone)); n != 1 {
		t.Fatalf("%d codes sent, want 1", n)
	}
}

func TestVerifyEngineSendsInThePersonsLanguageAndOffersItsChannels(t *testing.T) {
	ts, _ := startVerifyServer(t)
	c := dial(t, ts.URL)
	c.send("register", map[string]any{"phone_number": phone, "lang": "es"})
	c.expect("code_generated", "")
	if msgs := ts.Twilio.To(phone); len(msgs) != 1 || !strings.HasPrefix(msgs[0].Body, "Tu código") {
		t.Fatalf("messages %+v: want Verify's Spanish text", msgs)
	}
	c.registerBy(numberN(1), "whatsapp") // no WhatsApp sender configured
	c.expect("update", "bad_request")
}

func TestVerifyProviderSettings(t *testing.T) {
	env := func(vars map[string]string) func(string) string { return func(k string) string { return vars[k] } }
	twilio := map[string]string{"TWILIO_ACCOUNT_SID": fakeSID, "TWILIO_AUTH_TOKEN": fakeToken}
	for _, tc := range []struct {
		args []string
		vars map[string]string
		want string
	}{
		{[]string{"-provider=twilio"}, twilio, "-provider"},
		{[]string{"-provider=verify"}, nil, "TWILIO_ACCOUNT_SID"},
		{[]string{"-provider=verify"}, twilio, "TWILIO_VERIFY_SERVICE_SID"},
		{[]string{"-confirm-message=Done"}, map[string]string{"TWILIO_ACCOUNT_SID": fakeSID, "TWILIO_VERIFY_SERVICE_SID": verifyService}, "confirm-message"},
	} {
		_, err := parseConfig(tc.args, env(tc.vars), io.Discard)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%v %v: err = %v, want one naming %q", tc.args, tc.vars, err, tc.want)
		}
	}
	withVerify := map[string]string{"TWILIO_ACCOUNT_SID": fakeSID, "TWILIO_VERIFY_SERVICE_SID": verifyService}
	for args, want := range map[string]bool{"-provider=auto": true, "-provider=messages": false} {
		cfg, err := parseConfig([]string{args}, env(withVerify), io.Discard)
		if err != nil || cfg.twilio.usesVerify() != want {
			t.Errorf("%s: uses Verify = %v (%v), want %v", args, cfg.twilio.usesVerify(), err, want)
		}
	}
}
