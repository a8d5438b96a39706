package main

import (
	"strings"
	"testing"

	"github.com/chromedp/chromedp"
)

// TestInboundBrowserTextingUsTheShownCodeVerifiesThePageLive: with
// -inbound the number form offers "Text us a code instead"; the page shows
// the code, our number and a link that opens the messages app; a wrong
// code texted is told to the page, the right one turns it verified.
func TestInboundBrowserTextingUsTheShownCodeVerifiesThePageLive(t *testing.T) {
	ctx := newBrowser(t)
	ts := startServer(t, []string{"-inbound", "-public-url=https://verify.example.com"}, nil)

	step(t, ctx, "ask to text us the code", chromedp.Navigate(ts.URL+"/?lang=en"),
		chromedp.WaitVisible(chromedp.ID("inbound_button")),
		chromedp.Evaluate[chromedp.Void](`window.notReloaded = true`),
		chromedp.SendKeys(chromedp.ID("phone_number"), "(415) 555-2671"))
	screenshot(t, ctx, "inbound-1-offered")
	step(t, ctx, "take it", chromedp.Click(chromedp.ID("inbound_button")),
		chromedp.WaitVisible(chromedp.ID("inbound_code")))
	code := eval[string](t, ctx, `document.getElementById("inbound_code").textContent`)
	if len(code) != 6 || strings.Trim(code, "0123456789") != "" {
		t.Fatalf("the page shows the code %q", code)
	}
	if got, want := eval[string](t, ctx, `document.getElementById("verify_instructions").textContent`),
		"Text "+code+" to +1 500 555 0006 from the phone you are verifying."; got != want {
		t.Fatalf("the instructions say %q, want %q", got, want)
	}
	if got := eval[string](t, ctx, `document.getElementById("inbound_link").getAttribute("href")`); got != "sms:+15005550006?&body="+code {
		t.Fatalf("the messages link is %q", got)
	}
	if eval[bool](t, ctx, `document.getElementById("code").getClientRects().length > 0`) {
		t.Fatal("a code input is shown for a code the person texts us")
	}
	if n := len(ts.Twilio.Messages()); n != 0 {
		t.Fatalf("%d messages were sent", n)
	}
	screenshot(t, ctx, "inbound-2-code")
	step(t, ctx, "phone width", chromedp.EmulateViewport(390, 844))
	screenshot(t, ctx, "inbound-3-phone-code")

	textUs(t, ts, phone, wrongCode(code), fakeToken)
	step(t, ctx, "the wrong code is told", chromedp.Poll[chromedp.Void](
		`document.getElementById("update").classList.contains("error")`))
	if got := eval[string](t, ctx, `document.getElementById("update").textContent`); !strings.Contains(got, "not right") {
		t.Fatalf("after a wrong code #update says %q", got)
	}
	screenshot(t, ctx, "inbound-4-phone-wrong")

	if status, twiml := textUs(t, ts, phone, "My code: "+code, fakeToken); status != 200 || !strings.Contains(twiml, "<Response") {
		t.Fatalf("the right code: %d %q", status, twiml)
	}
	step(t, ctx, "the page turns verified", chromedp.WaitVisible(chromedp.ID("verified_panel")))
	if !eval[bool](t, ctx, `window.notReloaded === true`) {
		t.Fatal("the page reloaded")
	}
	if got := eval[string](t, ctx, `document.getElementById("update").textContent`); !strings.Contains(got, "verified") {
		t.Fatalf("#update says %q", got)
	}
	screenshot(t, ctx, "inbound-5-phone-verified")
}

// TestInboundBrowserNotOfferedWithoutTheFlag: without -inbound the number
// form offers no texting us.
func TestInboundBrowserNotOfferedWithoutTheFlag(t *testing.T) {
	ctx := newBrowser(t)
	ts := startServer(t, []string{"-public-url=https://verify.example.com"}, nil)
	step(t, ctx, "open the page", chromedp.Navigate(ts.URL+"/?lang=en"),
		chromedp.WaitVisible(chromedp.ID("phone_number")))
	if eval[bool](t, ctx, `document.getElementById("inbound_button").getClientRects().length > 0`) {
		t.Fatal("texting us is offered without -inbound")
	}
}
