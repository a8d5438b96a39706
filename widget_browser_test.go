package main

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// hostPage serves a host site's sign-up form with the widget in it, on its
// own origin. verifierURL is read on each request, so the verifier can be
// started after the host (it needs the host's origin for -allowed-origins).
func hostPage(t *testing.T, verifierURL *atomic.Value) *httptest.Server {
	t.Helper()
	return hostPageWith(t, verifierURL, `<div id="phone-check"></div>
  <script src="%[1]s/widget.js" data-container="#phone-check" data-callback="onPhone"></script>`)
}

// hostPageWith puts widgets (a format with %[1]s for the verifier's URL)
// in the host's form.
func hostPageWith(t *testing.T, verifierURL *atomic.Value, widgets string) *httptest.Server {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		fmt.Fprintf(w, `<!doctype html><html lang="en"><head><meta name="viewport" content="width=device-width, initial-scale=1">
<title>Host shop</title>
<style>body { font-family: serif; color: crimson; background: #fffbe8; margin: 24px }
input, button, label, p, h1 { color: crimson !important; font-size: 30px !important; }</style>
<script>
window.sockets = 0;
const RealWebSocket = window.WebSocket;
window.WebSocket = function (...args) { window.sockets++; return new RealWebSocket(...args); };
window.WebSocket.OPEN = RealWebSocket.OPEN;
window.events = []; window.callbacks = [];
function onPhone(detail) { window.callbacks.push(detail); }
</script></head><body>
<h1>Sign up at the host shop</h1>
<form id="signup" method="post" action="/submit">
  <label>Email <input name="email" value="a@example.com"></label>
  `+widgets+`
  <button type="submit">Create account</button>
</form>
<script>
for (const el of document.querySelectorAll("form div[id]")) {
  el.addEventListener("phone-verified", (e) => window.events.push({ ...e.detail, container: el.id }));
}
</script></body></html>`, verifierURL.Load())
	}))
	t.Cleanup(srv.Close)
	return srv
}

const shadow = `document.querySelector("#phone-check").shadowRoot`

func inWidget(id string) chromedp.JSPath {
	return chromedp.JSPath(shadow + `.getElementById("` + id + `")`)
}

func TestWidgetOnAnotherOriginVerifiesAndItsTokenPassesSiteverifyOnce(t *testing.T) {
	ctx := newBrowser(t)
	var verifierURL atomic.Value
	host := hostPage(t, &verifierURL)
	ts := startServer(t, []string{"-allowed-origins=" + host.URL}, withAPIKey)
	verifierURL.Store(ts.URL)

	start := time.Now()
	step(t, ctx, "open the host page", chromedp.Navigate(host.URL),
		chromedp.Poll[chromedp.Void](shadow+` && `+shadow+`.getElementById("connection")?.dataset.state === "open"`))
	ready := eval[float64](t, ctx, `performance.now()`)
	t.Logf("widget ready (socket open) %.0f ms after navigation started (%v wall, polled)", ready, time.Since(start).Round(time.Millisecond))
	screenshot(t, ctx, "widget-1-host-page")

	step(t, ctx, "ask for a code",
		chromedp.SendKeys(inWidget("phone_number"), "4155552671"),
		chromedp.Click(inWidget("register_button")),
		chromedp.WaitVisible(inWidget("code")))
	code := ts.codeFor(t, phone)
	body := ts.Twilio.To(phone)[0].Body
	if !strings.HasSuffix(body, "\n\n@127.0.0.1 #"+code) {
		t.Errorf("the text does not name the host page for WebOTP: %q", body)
	}
	step(t, ctx, "type the code",
		chromedp.SendKeys(inWidget("code"), code),
		chromedp.Click(inWidget("verify_button")),
		chromedp.Poll[chromedp.Void](`window.events.length === 1`))
	screenshot(t, ctx, "widget-2-verified")

	token := eval[string](t, ctx, `window.events[0].token`)
	if got := eval[string](t, ctx, `window.events[0].phone_number`); got != phone {
		t.Fatalf("event phone_number %q", got)
	}
	if got := eval[string](t, ctx, `document.querySelector('#signup input[name="phone_verification_token"]').value`); got != token {
		t.Fatalf("hidden input holds %q, event token %q", got, token)
	}
	if got := eval[string](t, ctx, `window.callbacks[0] && window.callbacks[0].token`); got != token {
		t.Fatalf("data-callback got %q", got)
	}
	if eval[bool](t, ctx, `getComputedStyle(`+shadow+`.getElementById("phone_number")).color === "rgb(220, 20, 60)"`) {
		t.Error("the host page's styles leak into the widget")
	}
	if _, a := siteverifyJSON(t, ts.URL, apiKey, token); !a.Success || a.Phone != phone {
		t.Fatalf("siteverify: %+v", a)
	}
	if _, a := siteverifyJSON(t, ts.URL, apiKey, token); a.Success {
		t.Fatal("siteverify accepted the token twice")
	}

	step(t, ctx, "phone width", chromedp.EmulateViewport(390, 844), chromedp.Reload(),
		chromedp.Poll[chromedp.Void](shadow+` && `+shadow+`.getElementById("connection")?.dataset.state === "open"`))
	screenshot(t, ctx, "widget-3-phone")
}

func TestWidgetOnAnOriginNotAllowedShowsAnErrorAndOpensNoSocket(t *testing.T) {
	ctx := newBrowser(t)
	var verifierURL atomic.Value
	host := hostPage(t, &verifierURL)
	ts := startServer(t, []string{"-allowed-origins=https://shop.example"}, nil)
	verifierURL.Store(ts.URL)

	step(t, ctx, "open the host page", chromedp.Navigate(host.URL),
		chromedp.Poll[chromedp.Void](shadow+` && `+shadow+`.querySelector('[role="alert"]')`))
	msg := eval[string](t, ctx, shadow+`.querySelector('[role="alert"]').textContent`)
	if !strings.Contains(msg, "not allowed") || !strings.Contains(msg, host.URL) {
		t.Fatalf("error message %q", msg)
	}
	if n := eval[int](t, ctx, `window.sockets`); n != 0 {
		t.Fatalf("%d sockets opened", n)
	}
	screenshot(t, ctx, "widget-4-not-allowed")
}

func TestDemoShopRoundTripWithTheDevInbox(t *testing.T) {
	ctx := newBrowser(t)
	ts := startServer(t, nil, map[string]string{"TWILIO_ACCOUNT_SID": ""})
	step(t, ctx, "open the demo shop", chromedp.Navigate(ts.URL+"/demo/embed"),
		chromedp.Poll[chromedp.Void](shadow+` && `+shadow+`.getElementById("connection")?.dataset.state === "open"`),
		chromedp.SendKeys(chromedp.ID("name"), "Ada"),
		chromedp.SendKeys(inWidget("phone_number"), "+1 415 555 2671"),
		chromedp.Click(inWidget("register_button")),
		chromedp.WaitVisible(inWidget("dev_inbox")))
	screenshot(t, ctx, "demo-1-dev-inbox")
	if radius := eval[string](t, ctx, `getComputedStyle(`+shadow+`.querySelector(".vf-card")).borderRadius`); radius != "14px" {
		t.Fatalf("the widget is unstyled under the page's CSP (border-radius %q)", radius)
	}
	text := eval[string](t, ctx, shadow+`.getElementById("dev_messages").textContent`)
	code := ts.stdout.waitFor(t, "DEV SMS to +14155552671")
	code = code[strings.LastIndex(code, " ")+1:]
	if !strings.Contains(text, code) {
		t.Fatalf("dev inbox shows %q, the console printed code %s", text, code)
	}
	step(t, ctx, "verify and sign up",
		chromedp.SendKeys(inWidget("code"), code),
		chromedp.Click(inWidget("verify_button")),
		chromedp.WaitVisible(inWidget("verified_panel")),
		chromedp.Click(chromedp.CSS("button.submit")))
	step(t, ctx, "see the back end's answer", chromedp.WaitVisible(chromedp.CSS("pre")))
	screenshot(t, ctx, "demo-2-welcome")
	if body := eval[string](t, ctx, `document.body.textContent`); !strings.Contains(body, `"success": true`) || !strings.Contains(body, "Welcome, Ada!") {
		t.Fatalf("result page: %s", body)
	}
}

func TestThePageSpeaksTheAskedLanguage(t *testing.T) {
	ctx := newBrowser(t)
	ts := startServer(t, nil, nil)
	step(t, ctx, "open in Spanish", chromedp.Navigate(ts.URL+"/?lang=es"), chromedp.WaitVisible(chromedp.ID("register_button")))
	if got := eval[string](t, ctx, `document.getElementById("register_button").textContent`); got != "Enviar código" {
		t.Fatalf("button says %q", got)
	}
	step(t, ctx, "ask for a code", chromedp.SendKeys(chromedp.ID("phone_number"), "+14155552671"),
		chromedp.Click(chromedp.ID("register_button")), chromedp.WaitVisible(chromedp.ID("code")))
	screenshot(t, ctx, "page-6-spanish")
	if body := ts.Twilio.To(phone)[0].Body; !strings.HasPrefix(body, "Tu código de verificación es: ") {
		t.Fatalf("text in Spanish expected, got %q", body)
	}
}

func TestTwoWidgetsOnOnePageWorkIndependently(t *testing.T) {
	ctx := newBrowser(t)
	var verifierURL atomic.Value
	host := hostPageWith(t, &verifierURL, `<div id="own"></div>
  <script src="%[1]s/widget.js" data-container="#own" data-theme="dark" data-lang="fr"></script>
  <div id="other"></div>
  <script src="%[1]s/widget.js" data-container="#other"></script>`)
	ts := startServer(t, []string{"-allowed-origins=" + host.URL}, nil)
	verifierURL.Store(ts.URL)
	root := func(id string) string { return `document.getElementById("` + id + `").shadowRoot` }
	in := func(id, el string) chromedp.JSPath {
		return chromedp.JSPath(root(id) + `.getElementById("` + el + `")`)
	}
	open := func(id string) string {
		return root(id) + ` && ` + root(id) + `.getElementById("connection")?.dataset.state === "open"`
	}
	step(t, ctx, "open", chromedp.Navigate(host.URL), chromedp.Poll[chromedp.Void](open("own")+" && "+open("other")))
	if got := eval[string](t, ctx, root("own")+`.getElementById("register_button").textContent`); got != "Envoyer le code" {
		t.Errorf("data-lang=fr widget says %q", got)
	}
	second := numberN(7)
	step(t, ctx, "verify in the second widget only",
		chromedp.SendKeys(in("other", "phone_number"), second),
		chromedp.Click(in("other", "register_button")),
		chromedp.WaitVisible(in("other", "code")))
	step(t, ctx, "type the code",
		chromedp.SendKeys(in("other", "code"), ts.codeFor(t, second)),
		chromedp.Click(in("other", "verify_button")),
		chromedp.Poll[chromedp.Void](`window.events.length === 1`))
	screenshot(t, ctx, "widget-5-two-widgets")
	if got := eval[string](t, ctx, `window.events[0].container`); got != "other" {
		t.Fatalf("event fired on #%s", got)
	}
	if !eval[bool](t, ctx, `!`+root("own")+`.getElementById("register_form").hidden`) {
		t.Fatal("the first widget left its number form")
	}
	if n := eval[int](t, ctx, `document.querySelectorAll('#own input[name="phone_verification_token"]').length`); n != 0 {
		t.Fatalf("the first widget got %d token inputs", n)
	}
}
