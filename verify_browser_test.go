package main

import (
	"strings"
	"testing"

	"github.com/chromedp/chromedp"
)

// TestPageFlowWithTwilioVerifyAsTheEngine: the page cannot tell which
// engine made its code; a wrong code, the call offer and the right code
// from Verify's call all work as with the server's own codes.
func TestPageFlowWithTwilioVerifyAsTheEngine(t *testing.T) {
	ctx := newBrowser(t)
	ts, _ := startVerifyServer(t, "-resend-after=1s")

	step(t, ctx, "ask for a code", chromedp.Navigate(ts.URL),
		chromedp.WaitVisible(chromedp.ID("phone_number")),
		chromedp.SendKeys(chromedp.ID("phone_number"), "(415) 555-2671"),
		chromedp.Click(chromedp.ID("register_button")),
		chromedp.WaitVisible(chromedp.ID("code")))
	text := verifyCode(t, ts.Twilio, phone, "sms")
	step(t, ctx, "type a wrong code",
		chromedp.SendKeys(chromedp.ID("code"), wrongCode(text)),
		chromedp.Click(chromedp.ID("verify_button")),
		chromedp.Poll[chromedp.Void](`document.getElementById("update").classList.contains("error")`))
	if got := eval[string](t, ctx, `document.getElementById("update").textContent`); !strings.Contains(got, "4") {
		t.Fatalf("after a wrong code #update says %q, want the attempts left", got)
	}

	step(t, ctx, "take Verify's call once the wait is over",
		chromedp.Poll[chromedp.Void](`!document.getElementById("call_button").hidden`),
		chromedp.Click(chromedp.ID("call_button")),
		chromedp.Poll[chromedp.Void](`document.getElementById("update").textContent.includes("calling")`))
	called := verifyCode(t, ts.Twilio, phone, "call")
	if called != text || len(ts.Twilio.Calls()) != 0 {
		t.Fatalf("Verify's call said %q (text %q); Calls API used %d times", called, text, len(ts.Twilio.Calls()))
	}
	step(t, ctx, "type the code",
		chromedp.Evaluate[chromedp.Void](`document.getElementById("code").value = ""`),
		chromedp.SendKeys(chromedp.ID("code"), called),
		chromedp.Click(chromedp.ID("verify_button")),
		chromedp.WaitVisible(chromedp.ID("verified_panel")))
	screenshot(t, ctx, "page-verify-engine-verified")
}
