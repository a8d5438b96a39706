package main

import (
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/chromedp/chromedp"

	"verifier/sms/faketwilio"
)

func TestPageSaysWhenACountryIsRefusedAndWhenTheTextArrived(t *testing.T) {
	ctx := newBrowser(t)
	const public = "https://verify.example.com"
	ts := startServer(t, []string{"-public-url=" + public}, nil)
	step(t, ctx, "ask for a code for a British number", chromedp.Navigate(ts.URL),
		chromedp.WaitVisible(chromedp.ID("phone_number")),
		chromedp.SendKeys(chromedp.ID("phone_number"), "+44 20 7183 8750"),
		chromedp.Click(chromedp.ID("register_button")),
		chromedp.Poll[chromedp.Void](`document.getElementById("update").classList.contains("error")`))
	if got := eval[string](t, ctx, `document.getElementById("update").textContent`); !strings.Contains(got, "country") {
		t.Fatalf("#update says %q", got)
	}
	screenshot(t, ctx, "page-6-country-refused")

	step(t, ctx, "ask for a code for a US number",
		chromedp.Evaluate[chromedp.Void](`document.getElementById("phone_number").value = ""`),
		chromedp.SendKeys(chromedp.ID("phone_number"), "(415) 555-2671"),
		chromedp.Click(chromedp.ID("register_button")),
		chromedp.WaitVisible(chromedp.ID("code")))
	report := url.Values{"MessageSid": {"SM1"}, "MessageStatus": {"delivered"}, "To": {phone}}
	req, _ := http.NewRequest("POST", ts.URL+"/twilio/status", strings.NewReader(report.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("X-Twilio-Signature", faketwilio.Sign(fakeToken, public+"/twilio/status", report))
	resp, err := http.DefaultClient.Do(req)
	if err != nil || resp.StatusCode != http.StatusNoContent {
		t.Fatalf("delivery report: %v %v", resp, err)
	}
	resp.Body.Close()
	step(t, ctx, "see the delivery", chromedp.Poll[chromedp.Void](
		`document.getElementById("update").textContent.includes("Delivered")`))
	step(t, ctx, "phone width", chromedp.EmulateViewport(390, 844))
	screenshot(t, ctx, "page-7-delivered")
	if !eval[bool](t, ctx, `!document.getElementById("verify_form").hidden`) {
		t.Fatal("the delivery report took the page off the code form")
	}
}
