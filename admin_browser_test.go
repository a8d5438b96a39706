package main

import (
	"context"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/emulation"
	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/chromedp"
)

// adminOpen is true once the admin page's socket is open.
const adminOpen = `document.querySelector("#connection[data-state=open]") !== null`

// watchPageErrors records, in every page the tab opens from now on, script
// errors and anything the CSP refused, for pageErrors to read.
func watchPageErrors(t *testing.T, ctx context.Context) {
	t.Helper()
	const src = `window.__errors = [];
addEventListener("error", (e) => __errors.push("error: " + e.message));
addEventListener("unhandledrejection", (e) => __errors.push("rejection: " + e.reason));
document.addEventListener("securitypolicyviolation", (e) => __errors.push("csp: " + e.violatedDirective + " " + e.blockedURI));`
	if _, err := chromedp.Call(ctx, page.AddScriptToEvaluateOnNewDocument, page.AddScriptToEvaluateOnNewDocumentParams{Source: src}); err != nil {
		t.Fatalf("watch page errors: %v", err)
	}
}

func pageErrors(t *testing.T, ctx context.Context) {
	t.Helper()
	if errs := eval[[]string](t, ctx, `window.__errors || []`); len(errs) > 0 {
		t.Errorf("the admin page reported: %q", errs)
	}
}

func adminText(t *testing.T, ctx context.Context, id string) string {
	t.Helper()
	return eval[string](t, ctx, `document.getElementById("`+id+`").textContent`)
}

func TestTheAdminPageShowsTheLastHourLive(t *testing.T) {
	ctx := newBrowser(t)
	watchPageErrors(t, ctx)
	ts, admin := startAdminServer(t, noLimits, nil)
	step(t, ctx, "open the admin page", chromedp.Navigate("http://"+admin+"/admin"),
		chromedp.Poll[chromedp.Void](adminOpen))
	if !eval[bool](t, ctx, `document.getElementById("minutes_chart") instanceof SVGSVGElement`) {
		t.Fatal("#minutes_chart is not an svg")
	}
	step(t, ctx, "an empty hour", chromedp.Evaluate[chromedp.Void](`window.notReloaded = true`),
		chromedp.Poll[chromedp.Void](`document.getElementById("sent").textContent === "0"`))
	screenshot(t, ctx, "admin-1-empty-desktop")

	scriptedRun(t, ts)

	step(t, ctx, "see the hour's numbers", chromedp.Poll[chromedp.Void](`(() => {
		const t = (id) => document.getElementById(id).textContent.trim();
		const rows = [...document.querySelectorAll("#failures tr")].map((r) => r.textContent);
		return t("sent") === "3" && t("verified") === "3" && t("failed") === "1" &&
			rows.some((r) => r.includes("US") && r.includes("21614"));
	})()`, chromedp.WithPollingTimeout(10*time.Second)))
	if got := adminText(t, ctx, "conversion"); got != "100%" {
		t.Errorf("#conversion says %q, want 100%%", got)
	}
	if href := eval[string](t, ctx, `document.querySelector("#failures a").href`); href != "https://www.twilio.com/docs/errors/21614" {
		t.Errorf("the error code links to %q", href)
	}
	if n := eval[int](t, ctx, `document.querySelectorAll("#minutes_chart rect.bar").length`); n < 3 {
		t.Errorf("the chart draws %d bars, want sent, verified and failed", n)
	}
	if got := eval[string](t, ctx, `document.querySelector("#minutes_chart desc").textContent`); !strings.Contains(got, "3 sent, 3 verified, 1 failed") {
		t.Errorf("the chart's description says %q", got)
	}
	// No caps here (noLimits): the gauges show the count and say so.
	for _, id := range []string{"spend_minute", "spend_hour"} {
		if got, level := adminText(t, ctx, id), eval[string](t, ctx, `document.getElementById("`+id+`").dataset.level`); !strings.Contains(got, "no cap") || level != "none" {
			t.Errorf("#%s says %q, level %q", id, got, level)
		}
	}
	if n := eval[int](t, ctx, `document.querySelectorAll("#limited tr").length`); n != 0 {
		t.Errorf("%d keys limited, want none", n)
	}
	screenshot(t, ctx, "admin-2-desktop")

	if err := flow(ts, numberN(3)); err != nil {
		t.Fatal(err)
	}
	step(t, ctx, "see the next code live", chromedp.Poll[chromedp.Void](
		`document.getElementById("sent").textContent === "4"`, chromedp.WithPollingTimeout(10*time.Second)))
	if !eval[bool](t, ctx, `window.notReloaded === true`) {
		t.Fatal("the admin page reloaded")
	}

	step(t, ctx, "phone width", chromedp.EmulateViewport(390, 844), chromedp.Reload(),
		chromedp.Poll[chromedp.Void](adminOpen+` && document.getElementById("sent").textContent === "4"`))
	if w := eval[int](t, ctx, `document.documentElement.scrollWidth`); w > 390 {
		t.Errorf("at 390 px the page is %d px wide", w)
	}
	screenshot(t, ctx, "admin-3-phone")
	step(t, ctx, "scroll to the tables", chromedp.Evaluate[chromedp.Void](`document.getElementById("spend_heading").scrollIntoView()`))
	screenshot(t, ctx, "admin-3b-phone-tables")
	dark := emulation.SetEmulatedMediaParams{Features: []*emulation.MediaFeature{{Name: "prefers-color-scheme", Value: "dark"}}}
	if _, err := chromedp.Call(ctx, emulation.SetEmulatedMedia, dark); err != nil {
		t.Fatalf("emulate a dark scheme: %v", err)
	}
	screenshot(t, ctx, "admin-4-phone-dark")
	step(t, ctx, "desktop width", chromedp.EmulateViewport(1280, 800))
	screenshot(t, ctx, "admin-5-desktop-dark")
	pageErrors(t, ctx)

	if _, err := chromedp.Call(ctx, emulation.SetEmulatedMedia, emulation.SetEmulatedMediaParams{}); err != nil {
		t.Fatalf("end the dark scheme: %v", err)
	}
}

func TestTheAdminPageSaysWhenItLosesTheServerAndReconnects(t *testing.T) {
	ctx := newBrowser(t)
	watchPageErrors(t, ctx)
	ts, admin := startAdminServer(t, noLimits, nil)
	// The page reaches the admin listener through a cable the test can cut.
	cable := newCable(t, admin)
	step(t, ctx, "open the admin page", chromedp.Navigate("http://"+cable.addr+"/admin"),
		chromedp.Poll[chromedp.Void](adminOpen), chromedp.Evaluate[chromedp.Void](`window.notReloaded = true`))
	if err := flow(ts, numberN(0)); err != nil {
		t.Fatal(err)
	}
	step(t, ctx, "see the code", chromedp.Poll[chromedp.Void](`document.getElementById("sent").textContent === "1"`))

	cable.cut()
	step(t, ctx, "see the page notice", chromedp.Poll[chromedp.Void](
		`document.getElementById("connection").dataset.state === "closed"`))
	if got := adminText(t, ctx, "connection"); !strings.Contains(got, "Disconnected") {
		t.Errorf("#connection says %q", got)
	}
	if got := adminText(t, ctx, "sent"); got != "1" {
		t.Errorf("disconnected, #sent says %q: want the last numbers kept", got)
	}
	screenshot(t, ctx, "admin-9-disconnected")
	if err := flow(ts, numberN(1)); err != nil {
		t.Fatal(err)
	}
	cable.mend()
	step(t, ctx, "reconnect", chromedp.Poll[chromedp.Void](adminOpen+` && document.getElementById("sent").textContent === "2"`,
		chromedp.WithPollingTimeout(12*time.Second)))
	if !eval[bool](t, ctx, `window.notReloaded === true`) {
		t.Fatal("the admin page reloaded")
	}
	pageErrors(t, ctx)
}

// cable is a TCP relay to a listener; cut drops every connection through
// it and refuses new ones until mend.
type cable struct {
	addr   string
	mu     sync.Mutex
	cutOff bool
	conns  []net.Conn
}

func newCable(t *testing.T, to string) *cable {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	c := &cable{addr: ln.Addr().String()}
	go func() {
		for {
			in, err := ln.Accept()
			if err != nil {
				return
			}
			c.mu.Lock()
			if c.cutOff {
				c.mu.Unlock()
				in.Close()
				continue
			}
			out, err := net.Dial("tcp", to)
			if err != nil {
				c.mu.Unlock()
				in.Close()
				continue
			}
			c.conns = append(c.conns, in, out)
			c.mu.Unlock()
			go func() { io.Copy(out, in); out.Close() }()
			go func() { io.Copy(in, out); in.Close() }()
		}
	}()
	t.Cleanup(c.cut)
	return c
}

func (c *cable) cut() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.cutOff = true
	for _, conn := range c.conns {
		conn.Close()
	}
	c.conns = nil
}

func (c *cable) mend() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.cutOff = false
}

func TestTheAdminPageAsksForItsKeyAndShowsLimitedKeys(t *testing.T) {
	ctx := newBrowser(t)
	watchPageErrors(t, ctx)
	const key = "0123456789abcdef-admin"
	ts, admin := startAdminServer(t, []string{"-max-sms-per-ip=1"}, map[string]string{"VERIFIER_ADMIN_KEY": key})
	for _, u := range []string{"/admin", "/admin?key=wrong", "/admin/stats"} {
		resp, err := http.Get("http://" + admin + u)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusUnauthorized {
			t.Errorf("GET %s without the key: %d, want 401", u, resp.StatusCode)
		}
	}

	c := dial(t, ts.URL)
	c.register(numberN(1))
	c.expect("code_generated", "")
	step(t, ctx, "open the admin page with its key", chromedp.Navigate("http://"+admin+"/admin?key="+key))
	opened, err := chromedp.Run(withTimeout(t, ctx, 10*time.Second), chromedp.Poll[bool](adminOpen))
	if err != nil || !opened {
		// The page's <script src> and <link href> cannot carry ?key=: say
		// which of its files the key kept out.
		for _, f := range []string{"/admin/admin.js", "/admin/admin.css"} {
			if resp, err := http.Get("http://" + admin + f); err == nil {
				resp.Body.Close()
				t.Logf("GET %s (as the page loads it, with no key): %d", f, resp.StatusCode)
			}
		}
		t.Fatalf("with ?key= the admin page never connected (%v); #connection says %q", err, adminText(t, ctx, "connection"))
	}
	step(t, ctx, "see the limited client", chromedp.Poll[chromedp.Void](`document.querySelectorAll("#limited tr").length === 1`))
	row := eval[string](t, ctx, `document.querySelector("#limited tr").textContent`)
	if !strings.Contains(row, "127.0.0.1") || !strings.Contains(row, "client") {
		t.Fatalf("the limited row says %q", row)
	}
	// The time left counts down between pushes too.
	first := eval[string](t, ctx, `document.querySelector("#limited time").textContent`)
	if !strings.HasSuffix(first, " s") && !strings.HasSuffix(first, " min") {
		t.Fatalf("time left %q", first)
	}
	step(t, ctx, "see the time left count down", chromedp.Poll[chromedp.Void](
		`document.querySelector("#limited time").textContent !== `+jsString(first), chromedp.WithPollingTimeout(5*time.Second)))
	if got := adminText(t, ctx, "spend_minute"); !strings.Contains(got, "1 of 60") {
		t.Errorf("#spend_minute says %q", got)
	}
	screenshot(t, ctx, "admin-7-limited-desktop")
	step(t, ctx, "phone width", chromedp.EmulateViewport(390, 844))
	screenshot(t, ctx, "admin-8-limited-phone")
	pageErrors(t, ctx)
}

func withTimeout(t *testing.T, ctx context.Context, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(ctx, d)
	t.Cleanup(cancel)
	return ctx
}

// jsString quotes s as a JavaScript string literal (for plain text).
func jsString(s string) string {
	return `"` + strings.NewReplacer(`\`, `\\`, `"`, `\"`, "\n", `\n`).Replace(s) + `"`
}
