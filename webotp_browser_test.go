package main

import (
	"testing"

	"github.com/chromedp/chromedp"
)

// stubWebOTP stands in for the browser's WebOTP API: the page's request is
// kept, resolveOTP answers it, and an abort is recorded.
const stubWebOTP = `window.OTPCredential = function () {};
	window.otpAsked = 0; window.otpAborted = false;
	navigator.credentials.get = (opts) => new Promise((resolve, reject) => {
		window.otpAsked++;
		window.otpTransport = opts.otp && opts.otp.transport.join(",");
		opts.signal.addEventListener("abort", () => { window.otpAborted = true; reject(new DOMException("aborted", "AbortError")); });
		window.resolveOTP = (code) => resolve({ code, type: "otp" });
	});`

func TestTheCodeFillsItselfInWhereTheBrowserReadsIt(t *testing.T) {
	ctx := newBrowser(t)
	ts := startServer(t, nil, nil)
	step(t, ctx, "ask for a code", chromedp.Navigate(ts.URL),
		chromedp.WaitVisible(chromedp.ID("phone_number")),
		chromedp.Evaluate[chromedp.Void](stubWebOTP),
		chromedp.SendKeys(chromedp.ID("phone_number"), "(415) 555-2671"),
		chromedp.Click(chromedp.ID("register_button")),
		chromedp.WaitVisible(chromedp.ID("code")),
		chromedp.Poll[chromedp.Void](`window.otpAsked === 1`))
	if got := eval[string](t, ctx, `window.otpTransport`); got != "sms" {
		t.Fatalf("asked for transport %q, want sms", got)
	}
	code := ts.codeFor(t, phone)
	step(t, ctx, "the browser hands over the code",
		chromedp.Evaluate[chromedp.Void](`window.resolveOTP(`+jsQuote(code)+`)`),
		chromedp.WaitVisible(chromedp.ID("verified_panel")))
	if typed := eval[string](t, ctx, `document.getElementById("code").value`); typed != code {
		t.Fatalf("code field %q, want %q filled in", typed, code)
	}
}

func TestTheBrowsersCodeRequestEndsWhenThePersonChangesTheNumber(t *testing.T) {
	ctx := newBrowser(t)
	ts := startServer(t, nil, nil)
	step(t, ctx, "ask for a code, then change the number", chromedp.Navigate(ts.URL),
		chromedp.WaitVisible(chromedp.ID("phone_number")),
		chromedp.Evaluate[chromedp.Void](stubWebOTP),
		chromedp.SendKeys(chromedp.ID("phone_number"), "(415) 555-2671"),
		chromedp.Click(chromedp.ID("register_button")),
		chromedp.WaitVisible(chromedp.ID("code")),
		chromedp.Poll[chromedp.Void](`window.otpAsked === 1`),
		chromedp.Click(chromedp.ID("change_number")),
		chromedp.WaitVisible(chromedp.ID("phone_number")))
	if !eval[bool](t, ctx, `window.otpAborted`) {
		t.Fatal("the WebOTP request was not aborted when the code form closed")
	}
	// A code handed over late does nothing.
	step(t, ctx, "a late code", chromedp.Evaluate[chromedp.Void](`window.resolveOTP("123456")`))
	if eval[bool](t, ctx, `!document.getElementById("verified_panel").hidden`) {
		t.Fatal("a late WebOTP code verified")
	}
}
