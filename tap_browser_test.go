package main

import (
	"context"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/chromedp"
)

// freeLoopbackAddr is a loopback address with a port nobody listens on, so
// a server can be told its own public URL before it starts.
func freeLoopbackAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	return addr
}

// tapState waits for the tap page in ctx to show state, and returns its
// message.
func tapState(t *testing.T, ctx context.Context, state string) string {
	t.Helper()
	step(t, ctx, "the tap page shows "+state, chromedp.WaitVisible(chromedp.CSS(`main.tap[data-state="`+state+`"]`)))
	return eval[string](t, ctx, `document.getElementById("tap_message").textContent`)
}

// stillWaiting fails unless the page in ctx is still on its code form.
func stillWaiting(t *testing.T, ctx context.Context, after string) {
	t.Helper()
	if !eval[bool](t, ctx, `!document.getElementById("verify_form").hidden && document.getElementById("verified_panel").hidden`) {
		t.Fatalf("after %s the asking tab left its code form", after)
	}
}

// TestTapBrowserALinkOpenedOnThePhoneVerifiesTheWaitingTab: a tab waits on
// the code form; a second browser (the phone, its own cookies) opens the
// text's link, which verifies nothing until its button is pressed; then
// the tab turns verified without a reload, and the link is used up.
func TestTapBrowserALinkOpenedOnThePhoneVerifiesTheWaitingTab(t *testing.T) {
	tab := newBrowser(t)
	addr := freeLoopbackAddr(t)
	public := "http://" + addr // the link must lead back to this very server
	ts := startServer(t, []string{"-addr=" + addr, "-public-url=" + public, "-max-lookups-per-ip=0"}, nil)

	step(t, tab, "ask for a code", chromedp.Navigate(ts.URL+"/?lang=en"),
		chromedp.WaitVisible(chromedp.ID("phone_number")),
		chromedp.Evaluate[chromedp.Void](`window.notReloaded = true`),
		chromedp.SendKeys(chromedp.ID("phone_number"), "(415) 555-2671"),
		chromedp.Click(chromedp.ID("register_button")),
		chromedp.WaitVisible(chromedp.ID("code")))
	link := public + linkIn(t, ts, phone)

	phoneCtx := newBrowser(t)
	step(t, phoneCtx, "open the link", chromedp.Navigate(link), chromedp.WaitVisible(chromedp.ID("tap_button")))
	if msg := tapState(t, phoneCtx, "live"); !strings.Contains(msg, "••71") {
		t.Fatalf("the live page says %q, want the number's ending", msg)
	}
	time.Sleep(300 * time.Millisecond) // a verified frame would have come by now
	stillWaiting(t, tab, "opening the link")
	screenshot(t, phoneCtx, "tap-1-live")
	step(t, phoneCtx, "phone width", chromedp.EmulateViewport(390, 844))
	screenshot(t, phoneCtx, "tap-2-phone-live")

	// Without the page's cookie the button's post proves nothing.
	if _, err := chromedp.Call(phoneCtx, network.ClearBrowserCookies, cdp.Empty{}); err != nil {
		t.Fatal(err)
	}
	step(t, phoneCtx, "press without the cookie", chromedp.Click(chromedp.ID("tap_button")))
	tapState(t, phoneCtx, "forbidden")
	stillWaiting(t, tab, "a post without the cookie")
	screenshot(t, phoneCtx, "tap-3-phone-forbidden")

	step(t, phoneCtx, "open the link again and press", chromedp.Navigate(link),
		chromedp.WaitVisible(chromedp.ID("tap_button")), chromedp.Click(chromedp.ID("tap_button")))
	if msg := tapState(t, phoneCtx, "verified"); !strings.Contains(msg, "verified") {
		t.Fatalf("after the tap the phone reads %q", msg)
	}
	screenshot(t, phoneCtx, "tap-4-phone-verified")

	step(t, tab, "the tab turns verified", chromedp.WaitVisible(chromedp.ID("verified_panel")))
	if !eval[bool](t, tab, `window.notReloaded === true`) {
		t.Fatal("the tab reloaded")
	}
	if got := eval[string](t, tab, `document.getElementById("verified_text").textContent`); got != phone+" is verified." {
		t.Fatalf("the tab says %q", got)
	}
	if !eval[bool](t, tab, `!document.getElementById("app_add_button").hidden`) {
		t.Fatal("the tab that asked, verified by the link, is not offered an authenticator app")
	}
	screenshot(t, tab, "tap-5-tab-verified")

	step(t, phoneCtx, "open the used link", chromedp.Navigate(link))
	tapState(t, phoneCtx, "used")
	if eval[int](t, phoneCtx, `document.querySelectorAll("#tap_button, form").length`) != 0 {
		t.Fatal("a used link still shows the form")
	}
	screenshot(t, phoneCtx, "tap-6-phone-used")
	step(t, phoneCtx, "desktop width", chromedp.EmulateViewport(1280, 800), chromedp.Reload())
	tapState(t, phoneCtx, "used")
	screenshot(t, phoneCtx, "tap-7-used")
	step(t, phoneCtx, "open a made-up link", chromedp.Navigate(public+"/v/"+strings.Repeat("A", 48)))
	tapState(t, phoneCtx, "invalid")
	screenshot(t, phoneCtx, "tap-8-invalid")
}
