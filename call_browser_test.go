package main

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"verifier/sms/faketwilio"
)

// TestPageOffersACallOnceTheResendWaitIsOverAndTheSpokenCodeVerifies asks
// for a code by text, waits out the resend wait, takes "Call me instead"
// and verifies with the code the fake Twilio's call says.
func TestPageOffersACallOnceTheResendWaitIsOverAndTheSpokenCodeVerifies(t *testing.T) {
	ctx := newBrowser(t)
	ts := startServer(t, []string{"-resend-after=1s"}, nil)

	step(t, ctx, "ask for a code by text", chromedp.Navigate(ts.URL),
		chromedp.WaitVisible(chromedp.ID("phone_number")),
		// Every frame the page sends, to check what the call button asks for.
		chromedp.Evaluate[chromedp.Void](`window.sent = [];
			const realSend = WebSocket.prototype.send;
			WebSocket.prototype.send = function (d) { window.sent.push(JSON.parse(d)); return realSend.call(this, d); };`),
		chromedp.SendKeys(chromedp.ID("phone_number"), "(415) 555-2671"),
		chromedp.Click(chromedp.ID("register_button")),
		chromedp.WaitVisible(chromedp.ID("code")))
	texts := fakeTextsTo(ts, phone)
	if texts != 1 {
		t.Fatalf("%d texts reached the fake Twilio, want 1", texts)
	}
	// While the wait is shown the call is not offered (read in one go, in
	// case the second of waiting is already over).
	if hiddenDuringWait := eval[any](t, ctx, `(() => {
		const $ = (id) => document.getElementById(id);
		return $("resend_wait").hidden ? null : $("call_button").hidden && $("resend_button").hidden;
	})()`); hiddenDuringWait == false {
		t.Fatal("call_button is shown during the resend wait")
	}

	step(t, ctx, "wait out the resend wait", chromedp.Poll[chromedp.Void](
		`!document.getElementById("call_button").hidden`))
	if !eval[bool](t, ctx, `(() => {
		const $ = (id) => document.getElementById(id);
		const visible = (e) => !e.hidden && e.getClientRects().length > 0 && !e.disabled;
		return visible($("call_button")) && visible($("resend_button")) && $("resend_wait").hidden;
	})()`) {
		t.Fatal("after the wait, call_button and resend_button are not both visible and enabled")
	}
	if got := eval[string](t, ctx, `document.getElementById("call_button").textContent`); got != "Call me instead" {
		t.Fatalf("call_button says %q", got)
	}
	sentText := eval[string](t, ctx, `document.getElementById("update").textContent`)
	screenshot(t, ctx, "page-8-call-offered")
	step(t, ctx, "phone width", chromedp.EmulateViewport(390, 844))
	screenshot(t, ctx, "page-9-phone-call-offered")

	step(t, ctx, "take the call", chromedp.Click(chromedp.ID("call_button")),
		chromedp.Poll[chromedp.Void](`document.getElementById("update").textContent !== `+jsQuote(sentText)))
	if got := eval[string](t, ctx, `document.getElementById("update").textContent`); got != "We are calling "+phone+" to say your code." {
		t.Fatalf("after call_button, #update says %q (before it said %q)", got, sentText)
	}
	screenshot(t, ctx, "page-10-phone-calling")
	last := eval[map[string]any](t, ctx, `window.sent.filter((f) => f.event === "register").at(-1)`)
	if d, _ := last["data"].(map[string]any); d["channel"] != "call" || d["phone_number"] != phone || d["reverify"] != false {
		t.Fatalf("call_button sent %v, want register for %s with channel call and reverify false", last, phone)
	}

	call := waitForFakeCall(t, ts, phone)
	code := faketwilio.Code(call.Body) // what the call says, its digits run together
	if code == "" || !strings.Contains(call.Twiml, "<Say") {
		t.Fatalf("no code in the call %q (TwiML %q)", call.Body, call.Twiml)
	}
	if last := ts.codeFor(t, phone); last != code {
		t.Fatalf("the fake's LastCode is %q, the call said %q", last, code)
	}
	if n := fakeTextsTo(ts, phone); n != texts {
		t.Fatalf("the call also sent %d texts", n-texts)
	}
	typeAndVerify(t, ctx, "type the code from the call", code)
	if got := eval[string](t, ctx, `document.getElementById("update").textContent`); !strings.Contains(got, "verified") {
		t.Fatalf("#update says %q", got)
	}
}

// jsQuote quotes s as a JavaScript string literal.
func jsQuote(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}

// waitForFakeCall waits for the fake Twilio to receive a call to phone and
// returns the latest.
func waitForFakeCall(t *testing.T, ts *testServer, phone string) faketwilio.Message {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		calls := ts.Twilio.Calls()
		for i := len(calls) - 1; i >= 0; i-- {
			if calls[i].To == phone {
				return calls[i]
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("no call to %s reached the fake Twilio (calls: %v)", phone, calls)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// fakeTextsTo counts the texts (not calls) the fake Twilio received for phone.
func fakeTextsTo(ts *testServer, phone string) int {
	n := 0
	for _, m := range ts.Twilio.To(phone) {
		if m.Twiml == "" {
			n++
		}
	}
	return n
}

// TestAFailedOrSilentTextOffersTheCallAtOnce: within the resend wait, a
// signed "failed" delivery report, or no report at all for
// -fallback-after, brings the call offer; the call's code verifies.
func TestAFailedOrSilentTextOffersTheCallAtOnce(t *testing.T) {
	const public = "https://verify.example.com"
	for _, tc := range []struct {
		name     string
		fallback string
		report   string
	}{
		{"failed report", "-fallback-after=0", "failed"},
		{"no report", "-fallback-after=300ms", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx := newBrowser(t)
			ts := startServer(t, []string{"-public-url=" + public, "-resend-after=1h", tc.fallback}, nil)
			step(t, ctx, "ask for a code by text", chromedp.Navigate(ts.URL),
				chromedp.WaitVisible(chromedp.ID("phone_number")),
				chromedp.SendKeys(chromedp.ID("phone_number"), "(415) 555-2671"),
				chromedp.Click(chromedp.ID("register_button")),
				chromedp.WaitVisible(chromedp.ID("code")))
			if tc.report != "" {
				postStatus(t, ts.URL, public, phone, tc.report)
			}
			step(t, ctx, "the call is offered within the resend wait", chromedp.Poll[chromedp.Void](
				`!document.getElementById("call_button").hidden && !document.getElementById("resend_wait").hidden`))
			screenshot(t, ctx, "page-11-call-offered-"+strings.ReplaceAll(tc.name, " ", "-"))
			step(t, ctx, "take the call", chromedp.Click(chromedp.ID("call_button")))
			call := waitForFakeCall(t, ts, phone)
			step(t, ctx, "the instructions name the call", chromedp.Poll[chromedp.Void](
				`document.getElementById("verify_instructions").textContent === "Enter the code the call said to +14155552671."`))
			typeAndVerify(t, ctx, "type the spoken code", faketwilio.Code(call.Body))
		})
	}
}

// TestNoCallIsOfferedWhereTheServerPlacesNone: a messaging service sends
// texts but places no calls, so the page never offers one.
func TestNoCallIsOfferedWhereTheServerPlacesNone(t *testing.T) {
	ctx := newBrowser(t)
	ts := startServer(t, []string{"-resend-after=1s"}, map[string]string{"TWILIO_FROM_NUMBER": "", "TWILIO_MESSAGING_SERVICE_SID": "MG123"})
	step(t, ctx, "ask for a code and wait out the resend wait", chromedp.Navigate(ts.URL),
		chromedp.WaitVisible(chromedp.ID("phone_number")),
		chromedp.SendKeys(chromedp.ID("phone_number"), "(415) 555-2671"),
		chromedp.Click(chromedp.ID("register_button")),
		chromedp.WaitVisible(chromedp.ID("code")),
		chromedp.Poll[chromedp.Void](`!document.getElementById("resend_button").hidden`))
	if eval[bool](t, ctx, `!document.getElementById("call_button").hidden`) {
		t.Fatal("a call is offered by a server that places none")
	}
}
