package main

import (
	"context"
	"net"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// newBrowser starts Debian's headless Chromium with a fresh profile, or
// skips the test where it is not installed.
func newBrowser(t *testing.T) context.Context {
	t.Helper()
	if testing.Short() {
		t.Skip("browser tests are skipped with -short")
	}
	path, err := exec.LookPath("chromium")
	if err != nil {
		t.Skip("chromium not installed (apt-get install chromium): skipping browser test")
	}
	opts := []chromedp.ExecAllocatorOption{
		chromedp.ExecPath(path), chromedp.Headless, chromedp.NoSandbox, chromedp.DisableGPU,
		chromedp.UserDataDir(t.TempDir()), chromedp.WindowSize(1280, 800),
	}
	for _, f := range []string{"disable-quic", "no-first-run", "disable-background-networking",
		"disable-component-update", "disable-sync"} {
		opts = append(opts, chromedp.Flag(f, true))
	}
	allocCtx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancel := chromedp.NewContext(allocCtx)
	t.Cleanup(func() { cancel(); cancelAlloc() })
	if err := chromedp.Do(ctx); err != nil { // starts the browser
		t.Fatalf("start chromium: %v", err)
	}
	return ctx
}

// step runs browser actions with a bound on how long they may wait.
func step(t *testing.T, ctx context.Context, what string, actions ...chromedp.Action[chromedp.Void]) {
	t.Helper()
	ctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	if err := chromedp.Do(ctx, actions...); err != nil {
		t.Fatalf("%s: %v", what, err)
	}
}

// typeAndVerify types code in the code form, sends it, and waits for the
// verified panel.
func typeAndVerify(t *testing.T, ctx context.Context, what, code string) {
	t.Helper()
	step(t, ctx, what, chromedp.SendKeys(chromedp.ID("code"), code),
		chromedp.Click(chromedp.ID("verify_button")),
		chromedp.WaitVisible(chromedp.ID("verified_panel")))
}

func eval[T any](t *testing.T, ctx context.Context, js string) T {
	t.Helper()
	v, err := chromedp.Run(ctx, chromedp.Evaluate[T](js))
	if err != nil {
		t.Fatalf("evaluate %s: %v", js, err)
	}
	return v
}

// screenshot saves a PNG of the page to a temp folder, for people to look
// at; it is never committed.
func screenshot(t *testing.T, ctx context.Context, name string) {
	t.Helper()
	buf, err := chromedp.Run(ctx, chromedp.CaptureScreenshot())
	if err != nil {
		t.Logf("screenshot %s: %v", name, err)
		return
	}
	dir := filepath.Join(os.TempDir(), "verifier-screenshots")
	os.MkdirAll(dir, 0o755)
	file := filepath.Join(dir, name+".png")
	if err := os.WriteFile(file, buf, 0o644); err == nil {
		t.Logf("screenshot: %s", file)
	}
}

func TestPageFullFlowWithoutReloadAndResumeAfterRestart(t *testing.T) {
	ctx := newBrowser(t)
	dbPath := filepath.Join(t.TempDir(), "v.db")
	ts := startServer(t, []string{"-db=" + dbPath}, nil)
	u, _ := url.Parse(ts.URL)
	_, port, _ := net.SplitHostPort(u.Host)

	step(t, ctx, "open the page", chromedp.Navigate(ts.URL),
		chromedp.WaitVisible(chromedp.ID("phone_number")),
		chromedp.Evaluate[chromedp.Void](`window.notReloaded = true`))
	screenshot(t, ctx, "page-1-number")
	step(t, ctx, "ask for a code",
		chromedp.SendKeys(chromedp.ID("phone_number"), "(415) 555-2671"),
		chromedp.Click(chromedp.ID("register_button")),
		chromedp.WaitVisible(chromedp.ID("code")))
	screenshot(t, ctx, "page-2-code")

	// The server goes away and comes back on the same port and file.
	ts.stop()
	step(t, ctx, "see the page notice", chromedp.Poll[chromedp.Void](
		`document.getElementById("connection").dataset.state !== "open"`))
	ts2 := startServer(t, []string{"-db=" + dbPath, "-addr=127.0.0.1:" + port}, nil)
	step(t, ctx, "reconnect", chromedp.Poll[chromedp.Void](
		`document.getElementById("connection").dataset.state === "open"`, chromedp.WithPollingTimeout(20*time.Second)))
	if !eval[bool](t, ctx, `!document.getElementById("verify_form").hidden`) {
		t.Fatal("after the restart the page is not back on the code form")
	}

	code := ts.codeFor(t, phone)
	typeAndVerify(t, ctx, "type the code", code)
	screenshot(t, ctx, "page-3-verified")
	if !eval[bool](t, ctx, `window.notReloaded === true`) {
		t.Fatal("the page reloaded")
	}
	if got := eval[string](t, ctx, `document.getElementById("update").textContent`); !strings.Contains(got, "verified") {
		t.Fatalf("#update says %q", got)
	}
	if n := len(ts2.Twilio.Messages()); n != 0 {
		t.Fatalf("resuming sent %d texts", n)
	}

	step(t, ctx, "phone width", chromedp.EmulateViewport(390, 844), chromedp.Reload(),
		chromedp.WaitVisible(chromedp.ID("verified_panel")))
	screenshot(t, ctx, "page-4-phone-verified")
	step(t, ctx, "start over", chromedp.Click(chromedp.ID("start_over")),
		chromedp.SendKeys(chromedp.ID("phone_number"), "12345"),
		chromedp.Click(chromedp.ID("register_button")),
		chromedp.Poll[chromedp.Void](`document.getElementById("update").classList.contains("error")`))
	screenshot(t, ctx, "page-5-phone-invalid")
}
