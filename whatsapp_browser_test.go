package main

import (
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"verifier/sms/faketwilio"
)

// The tests that expect the button need wire.go to pass the WhatsApp
// sender to the front end:
//
//	assets.Load(assets.Options{..., WhatsApp: cfg.twilio.sendsWhatsApp()})
//
// Without that line WHATSAPP is false and "Send on WhatsApp" never shows.

// withWhatsApp configures a WhatsApp sender beside the fake Twilio's number.
var withWhatsApp = map[string]string{"TWILIO_WHATSAPP_FROM": "whatsapp:+15005550006"}

// resendLinks reads, in one go, which of the ways to a new code the card in
// root (a document or a shadow root, as JavaScript) shows, and whether each
// shown one lies inside the card: a long label must wrap, not spill.
func resendLinks(root string) string {
	return `(() => {
		const root = ` + root + `, $ = (id) => root.getElementById(id);
		const card = $("verifier").getBoundingClientRect();
		const shown = (e) => !e.hidden && e.getClientRects().length > 0;
		const out = { wait: shown($("resend_wait")), spills: [] };
		for (const id of ["resend_button", "call_button", "whatsapp_button"]) {
			const e = $(id);
			out[id] = shown(e) && !e.disabled;
			const r = e.getBoundingClientRect();
			if (shown(e) && (r.left < card.left || r.right > card.right)) out.spills.push(id);
		}
		return out;
	})()`
}

type links struct {
	Wait           bool     `json:"wait"`
	ResendButton   bool     `json:"resend_button"`
	CallButton     bool     `json:"call_button"`
	WhatsAppButton bool     `json:"whatsapp_button"`
	Spills         []string `json:"spills"`
}

// waitForWhatsApp waits for the fake Twilio's next message on ch (from
// ts.Twilio.Next), which must go to phone's WhatsApp address.
func waitForWhatsApp(t *testing.T, ts *testServer, ch <-chan faketwilio.Message) faketwilio.Message {
	t.Helper()
	select {
	case m := <-ch:
		if m.To != "whatsapp:"+phone || m.Twiml != "" {
			t.Fatalf("the message went to %q (TwiML %q), want whatsapp:%s", m.To, m.Twiml, phone)
		}
		return m
	case <-time.After(10 * time.Second):
		t.Fatalf("no WhatsApp message to %s reached the fake Twilio (messages: %+v)", phone, ts.Twilio.Messages())
	}
	panic("unreachable")
}

// TestPageOffersWhatsAppOnceTheResendWaitIsOverAndItsCodeVerifies asks for
// a code by text, waits out the resend wait, takes "Send on WhatsApp" and
// verifies with the code the WhatsApp message carries. It needs the
// wire.go line above.
func TestPageOffersWhatsAppOnceTheResendWaitIsOverAndItsCodeVerifies(t *testing.T) {
	ctx := newBrowser(t)
	ts := startServer(t, []string{"-resend-after=1s"}, withWhatsApp)

	step(t, ctx, "ask for a code by text", chromedp.Navigate(ts.URL+"/?lang=en"),
		chromedp.WaitVisible(chromedp.ID("phone_number")),
		chromedp.Evaluate[chromedp.Void](`window.sent = [];
			const realSend = WebSocket.prototype.send;
			WebSocket.prototype.send = function (d) { window.sent.push(JSON.parse(d)); return realSend.call(this, d); };`),
		chromedp.SendKeys(chromedp.ID("phone_number"), "(415) 555-2671"),
		chromedp.Click(chromedp.ID("register_button")),
		chromedp.WaitVisible(chromedp.ID("code")))
	if n := fakeTextsTo(ts, phone); n != 1 {
		t.Fatalf("%d texts reached the fake Twilio, want 1", n)
	}
	if l := eval[links](t, ctx, resendLinks("document")); l.Wait && l.WhatsAppButton {
		t.Fatal("whatsapp_button is shown during the resend wait")
	}

	step(t, ctx, "wait out the resend wait", chromedp.Poll[chromedp.Void](
		`!document.getElementById("whatsapp_button").hidden`))
	if l := eval[links](t, ctx, resendLinks("document")); !l.WhatsAppButton || !l.CallButton || !l.ResendButton || l.Wait || len(l.Spills) > 0 {
		t.Fatalf("after the wait: %+v, want the text, the call and WhatsApp offered, enabled, inside the card", l)
	}
	if got := eval[string](t, ctx, `document.getElementById("whatsapp_button").textContent`); got != "Send on WhatsApp" {
		t.Fatalf("whatsapp_button says %q", got)
	}
	screenshot(t, ctx, "whatsapp-1-page-offered")
	step(t, ctx, "phone width", chromedp.EmulateViewport(390, 844))
	if l := eval[links](t, ctx, resendLinks("document")); len(l.Spills) > 0 {
		t.Fatalf("at 390 px %v spill out of the card", l.Spills)
	}
	screenshot(t, ctx, "whatsapp-2-page-phone-offered")

	next := ts.Twilio.Next("whatsapp:" + phone)
	step(t, ctx, "take WhatsApp", chromedp.Click(chromedp.ID("whatsapp_button")),
		chromedp.Poll[chromedp.Void](`document.getElementById("update").textContent === "We sent a code to +14155552671 on WhatsApp."`))
	msg := waitForWhatsApp(t, ts, next)
	step(t, ctx, "the page names WhatsApp", chromedp.Poll[chromedp.Void](
		`document.getElementById("verify_instructions").textContent.includes("WhatsApp")`))
	if got := eval[string](t, ctx, `document.getElementById("verify_instructions").textContent`); got != "Enter the code we sent to +14155552671 on WhatsApp." {
		t.Fatalf("verify_instructions say %q", got)
	}
	last := eval[map[string]any](t, ctx, `window.sent.filter((f) => f.event === "register").at(-1)`)
	if d, _ := last["data"].(map[string]any); d["channel"] != "whatsapp" || d["phone_number"] != phone || d["reverify"] != false {
		t.Fatalf("whatsapp_button sent %v, want register for %s with channel whatsapp and reverify false", last, phone)
	}
	// Within the new wait WhatsApp is not offered again, but a text and a
	// call are (read in one go, in case the second is already over).
	if l := eval[links](t, ctx, resendLinks("document")); l.Wait && (l.WhatsAppButton || !l.CallButton || !l.ResendButton) {
		t.Fatalf("during the wait after WhatsApp: %+v, want the text and the call but not WhatsApp", l)
	}
	if got := eval[string](t, ctx, `document.getElementById("resend_button").textContent`); got != "Text me instead" {
		t.Fatalf("after WhatsApp resend_button says %q", got)
	}
	screenshot(t, ctx, "whatsapp-3-page-phone-sent")

	code := faketwilio.Code(msg.Body)
	if code == "" {
		t.Fatalf("no code in the WhatsApp message %q", msg.Body)
	}
	typeAndVerify(t, ctx, "type the code from WhatsApp", code)
	if got := eval[string](t, ctx, `document.getElementById("update").textContent`); !strings.Contains(got, "verified") {
		t.Fatalf("#update says %q", got)
	}
	screenshot(t, ctx, "whatsapp-4-page-phone-verified")
}

// TestWidgetOffersWhatsAppInItsShadowRoot: the widget on a host page offers
// WhatsApp after the wait too, and its code verifies. It needs the wire.go
// line above.
func TestWidgetOffersWhatsAppInItsShadowRoot(t *testing.T) {
	ctx := newBrowser(t)
	var verifierURL atomic.Value
	host := hostPage(t, &verifierURL)
	ts := startServer(t, []string{"-allowed-origins=" + host.URL, "-resend-after=1s"}, withWhatsApp)
	verifierURL.Store(ts.URL)

	step(t, ctx, "ask for a code by text in the widget", chromedp.Navigate(host.URL),
		chromedp.Poll[chromedp.Void](shadow+` && `+shadow+`.getElementById("connection")?.dataset.state === "open"`),
		chromedp.SendKeys(inWidget("phone_number"), "4155552671"),
		chromedp.Click(inWidget("register_button")),
		chromedp.WaitVisible(inWidget("code")),
		chromedp.Poll[chromedp.Void](`!`+shadow+`.getElementById("whatsapp_button").hidden`))
	if l := eval[links](t, ctx, resendLinks(shadow)); !l.WhatsAppButton || !l.CallButton || !l.ResendButton || len(l.Spills) > 0 {
		t.Fatalf("after the wait the widget shows %+v", l)
	}
	if eval[int](t, ctx, `document.querySelectorAll("#whatsapp_button").length`) != 0 {
		t.Fatal("the widget put its button in the host page's own DOM")
	}
	screenshot(t, ctx, "whatsapp-5-widget-offered")
	step(t, ctx, "phone width", chromedp.EmulateViewport(390, 844),
		chromedp.Evaluate[chromedp.Void](`document.getElementById("phone-check").scrollIntoView()`))
	if l := eval[links](t, ctx, resendLinks(shadow)); len(l.Spills) > 0 {
		t.Fatalf("at 390 px %v spill out of the widget", l.Spills)
	}
	screenshot(t, ctx, "whatsapp-6-widget-phone-offered")

	next := ts.Twilio.Next("whatsapp:" + phone)
	step(t, ctx, "take WhatsApp", chromedp.Click(inWidget("whatsapp_button")))
	msg := waitForWhatsApp(t, ts, next)
	step(t, ctx, "the widget names WhatsApp", chromedp.Poll[chromedp.Void](
		shadow+`.getElementById("verify_instructions").textContent === "Enter the code we sent to +14155552671 on WhatsApp."`))
	screenshot(t, ctx, "whatsapp-7-widget-phone-sent")
	step(t, ctx, "type the code from WhatsApp",
		chromedp.SendKeys(inWidget("code"), faketwilio.Code(msg.Body)),
		chromedp.Click(inWidget("verify_button")),
		chromedp.Poll[chromedp.Void](`window.events.length === 1`))
}

// TestPageOffersWhatsAppAtOnceWhenTheTextGoesUnreported: within a long
// resend wait, a text with no delivery report for -fallback-after brings
// the WhatsApp offer (and the call's) at once. It needs the wire.go line
// above.
func TestPageOffersWhatsAppAtOnceWhenTheTextGoesUnreported(t *testing.T) {
	ctx := newBrowser(t)
	ts := startServer(t, []string{"-public-url=https://verify.example.com", "-resend-after=1h", "-fallback-after=300ms"}, withWhatsApp)
	step(t, ctx, "ask for a code by text", chromedp.Navigate(ts.URL+"/?lang=en"),
		chromedp.WaitVisible(chromedp.ID("phone_number")),
		chromedp.SendKeys(chromedp.ID("phone_number"), "(415) 555-2671"),
		chromedp.Click(chromedp.ID("register_button")),
		chromedp.WaitVisible(chromedp.ID("code")))
	step(t, ctx, "WhatsApp is offered within the resend wait", chromedp.Poll[chromedp.Void](
		`!document.getElementById("whatsapp_button").hidden`))
	if l := eval[links](t, ctx, resendLinks("document")); !l.Wait || !l.WhatsAppButton || !l.CallButton || l.ResendButton {
		t.Fatalf("after no report: %+v, want the wait, the call and WhatsApp, not a second text", l)
	}
	screenshot(t, ctx, "whatsapp-9-page-offered-unreported")
	next := ts.Twilio.Next("whatsapp:" + phone)
	step(t, ctx, "take WhatsApp", chromedp.Click(chromedp.ID("whatsapp_button")))
	msg := waitForWhatsApp(t, ts, next)
	// The fake has the message before the page has code_generated: until
	// then the form is busy and would drop the keys.
	step(t, ctx, "the page names WhatsApp", chromedp.Poll[chromedp.Void](
		`document.getElementById("verify_instructions").textContent === "Enter the code we sent to +14155552671 on WhatsApp."`))
	typeAndVerify(t, ctx, "type the code from WhatsApp", faketwilio.Code(msg.Body))
}

// TestPageOffersNoWhatsAppWithoutASender: with no TWILIO_WHATSAPP_FROM the
// page offers a text and a call after the wait, never WhatsApp.
func TestPageOffersNoWhatsAppWithoutASender(t *testing.T) {
	ctx := newBrowser(t)
	ts := startServer(t, []string{"-resend-after=1s"}, nil)
	step(t, ctx, "ask for a code and wait out the resend wait", chromedp.Navigate(ts.URL),
		chromedp.WaitVisible(chromedp.ID("phone_number")),
		chromedp.SendKeys(chromedp.ID("phone_number"), "(415) 555-2671"),
		chromedp.Click(chromedp.ID("register_button")),
		chromedp.WaitVisible(chromedp.ID("code")),
		chromedp.Poll[chromedp.Void](`!document.getElementById("resend_button").hidden`))
	if l := eval[links](t, ctx, resendLinks("document")); l.WhatsAppButton || !l.CallButton {
		t.Fatalf("without a WhatsApp sender the page shows %+v", l)
	}
	screenshot(t, ctx, "whatsapp-8-page-none")
}
