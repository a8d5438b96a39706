package main

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/pquerna/otp/totp"
)

// shown is JavaScript: whether the element with id takes space on the page.
func shown(id string) string {
	return `(document.getElementById("` + id + `").getClientRects().length > 0)`
}

// typeCode types code into the input id and presses button.
func typeCode(t *testing.T, ctx context.Context, what, id, button, code string) {
	t.Helper()
	step(t, ctx, what, chromedp.Clear(chromedp.ID(id)), chromedp.SendKeys(chromedp.ID(id), code),
		chromedp.Click(chromedp.ID(button)))
}

// TestAppBrowserAddAnAppAfterATextThenVerifyWithIt: verified by text, the
// page offers an authenticator app, shows its QR code and key, takes its
// first code; then, from the number form, "Use my authenticator app"
// verifies with the app's next code and sends no text.
func TestAppBrowserAddAnAppAfterATextThenVerifyWithIt(t *testing.T) {
	ctx := newBrowser(t)
	ts := startServer(t, noLimits, nil)

	step(t, ctx, "verify by text", chromedp.Navigate(ts.URL+"/?lang=en"),
		chromedp.WaitVisible(chromedp.ID("app_button")),
		chromedp.SendKeys(chromedp.ID("phone_number"), "(415) 555-2671"),
		chromedp.Click(chromedp.ID("register_button")),
		chromedp.WaitVisible(chromedp.ID("code")))
	typeCode(t, ctx, "type the texted code", "code", "verify_button", ts.codeFor(t, phone))
	step(t, ctx, "the app is offered", chromedp.WaitVisible(chromedp.ID("verified_panel")),
		chromedp.WaitVisible(chromedp.ID("app_add_button")))
	screenshot(t, ctx, "app-1-offered")

	step(t, ctx, "add an app", chromedp.Click(chromedp.ID("app_add_button")),
		chromedp.WaitVisible(chromedp.ID("app_panel")),
		chromedp.Poll[chromedp.Void](`document.getElementById("app_qr").naturalWidth > 0`))
	if alt := eval[string](t, ctx, `document.getElementById("app_qr").alt`); alt == "" {
		t.Fatal("the QR code has no alt text")
	}
	shownKey := eval[string](t, ctx, `document.getElementById("app_secret").textContent`)
	secret := strings.ReplaceAll(shownKey, " ", "")
	if len(secret) < 16 || !strings.Contains(shownKey, " ") || strings.Trim(secret, "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567") != "" {
		t.Fatalf("the key is shown as %q, want base32 in groups", shownKey)
	}
	screenshot(t, ctx, "app-2-qr")
	step(t, ctx, "phone width", chromedp.EmulateViewport(390, 844))
	screenshot(t, ctx, "app-3-phone-qr")

	now, _ := totp.GenerateCode(secret, time.Now())
	typeCode(t, ctx, "type a wrong code", "app_code", "app_confirm_button", wrongCode(now))
	step(t, ctx, "the wrong code is told", chromedp.Poll[chromedp.Void](
		`document.getElementById("update").textContent.includes("not the code your app shows")`))
	if !eval[bool](t, ctx, shown("app_panel")+` && document.getElementById("app_code").value === ""`) {
		t.Fatal("after a wrong code the page left the app's step or kept the code")
	}
	screenshot(t, ctx, "app-4-phone-wrong")
	now, _ = totp.GenerateCode(secret, time.Now())
	typeCode(t, ctx, "type the app's code", "app_code", "app_confirm_button", now)
	step(t, ctx, "the app is added", chromedp.Poll[chromedp.Void](
		`document.getElementById("update").textContent.startsWith("Authenticator app added")`),
		chromedp.WaitVisible(chromedp.ID("verified_panel")))
	if !eval[bool](t, ctx, `!`+shown("app_add_button")+` && `+shown("app_remove_button")) {
		t.Fatal("after adding, the page still offers to add, or not to remove")
	}
	screenshot(t, ctx, "app-5-phone-added")

	texts := len(ts.Twilio.Messages())
	step(t, ctx, "use the app", chromedp.Click(chromedp.ID("start_over")),
		chromedp.WaitVisible(chromedp.ID("phone_number")),
		chromedp.SendKeys(chromedp.ID("phone_number"), "+1 415 555 2671"),
		chromedp.Click(chromedp.ID("app_button")),
		chromedp.WaitVisible(chromedp.ID("code")))
	if got := eval[string](t, ctx, `document.getElementById("verify_instructions").textContent`); got != "Enter the code your authenticator app shows." {
		t.Fatalf("the instructions say %q", got)
	}
	if eval[bool](t, ctx, shown("timers")+` || `+shown("resend_button")+` || `+shown("call_button")) {
		t.Fatal("an app's code offers a new code or a call")
	}
	screenshot(t, ctx, "app-6-phone-enter")
	next, _ := totp.GenerateCode(secret, time.Now().Add(30*time.Second)) // the step just used is spent
	typeCode(t, ctx, "type the app's next code", "code", "verify_button", next)
	step(t, ctx, "verified by the app", chromedp.WaitVisible(chromedp.ID("verified_panel")))
	if eval[bool](t, ctx, shown("app_add_button")+` || `+shown("app_remove_button")) {
		t.Fatal("a verification by the app offers to change the app")
	}
	if n := len(ts.Twilio.Messages()); n != texts {
		t.Fatalf("the app's code sent %d texts", n-texts)
	}
	screenshot(t, ctx, "app-7-phone-verified")
}

// TestAppBrowserANumberWithoutAnAppStaysOnTheNumberForm: "Use my
// authenticator app" for a number with none says so and stays.
func TestAppBrowserANumberWithoutAnAppStaysOnTheNumberForm(t *testing.T) {
	ctx := newBrowser(t)
	ts := startServer(t, noLimits, nil)
	step(t, ctx, "ask for the app's code", chromedp.Navigate(ts.URL+"/?lang=en"),
		chromedp.WaitVisible(chromedp.ID("app_button")),
		chromedp.SendKeys(chromedp.ID("phone_number"), "(415) 555-2671"),
		chromedp.Click(chromedp.ID("app_button")),
		chromedp.Poll[chromedp.Void](`document.getElementById("update").classList.contains("error")`))
	if got := eval[string](t, ctx, `document.getElementById("update").textContent`); !strings.Contains(got, "no authenticator app") {
		t.Fatalf("#update says %q", got)
	}
	if !eval[bool](t, ctx, shown("register_form")) {
		t.Fatal("the page left the number form")
	}
	screenshot(t, ctx, "app-8-not-set")
}
