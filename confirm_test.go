package main

import (
	"testing"
	"time"

	"verifier/sms/faketwilio"
)

// waitMessages waits until the fake holds n messages to phone.
func waitMessages(t *testing.T, ts *testServer, phone string, n int) []faketwilio.Message {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		if msgs := ts.Twilio.To(phone); len(msgs) >= n || time.Now().After(deadline) {
			return msgs
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestAConfirmationTextFollowsASuccessOnceAndNeverAFailure(t *testing.T) {
	ts := startServer(t, []string{"-confirm-message=Your number is verified.", "-max-attempts=2"}, nil)
	c, code := ts.requestCode(t, phone)
	c.verify(phone, wrongCode(code))
	c.expect("update", "wrong_code")
	c.verify(phone, code)
	c.expect("verified", "")
	msgs := waitMessages(t, ts, phone, 2)
	if len(msgs) != 2 || msgs[1].Body != "Your number is verified." {
		t.Fatalf("messages %+v: want the code, then one confirmation", msgs)
	}

	other := numberN(1) // a failed flow gets no confirmation
	c2, code2 := ts.requestCode(t, other)
	c2.verify(other, wrongCode(code2))
	c2.expect("update", "wrong_code")
	c2.verify(other, wrongCode(code2))
	c2.expect("reset", "too_many_attempts")
	ts.stop() // waits for confirmations under way
	if n := len(ts.Twilio.To(other)); n != 1 {
		t.Fatalf("%d messages to a number that failed: want the code alone", n)
	}
	if n := len(ts.Twilio.To(phone)); n != 2 {
		t.Fatalf("%d messages to the verified number: want exactly one confirmation", n)
	}
}

func TestAFailedConfirmationLeavesTheNumberVerifiedAndTellsThePage(t *testing.T) {
	ts := startServer(t, []string{"-confirm-message=Your number is verified."}, nil)
	c, code := ts.requestCode(t, phone)
	ts.Twilio.SetFailure(&faketwilio.Failure{HTTPStatus: 500, Code: 20500})
	c.verify(phone, code)
	// The confirmation runs after the answer is decided, beside its
	// sending: a fast failure may reach the page first. Both must come.
	got := map[string]bool{}
	for range 2 {
		f := c.next()
		got[f.Event+" "+f.reason()] = true
	}
	if !got["verified "] || !got["update confirm_failed"] {
		t.Fatalf("the page heard %v, want verified and update confirm_failed", got)
	}
	ts.Twilio.SetFailure(nil)
	c.register(phone)
	c.expect("update", "already_verified")
}
