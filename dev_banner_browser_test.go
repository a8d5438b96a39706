package main

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"

	"github.com/chromedp/cdproto/emulation"
	"github.com/chromedp/chromedp"

	"verifier/assets"
)

// devBanner is what a browser sees of the development-mode banner.
type devBanner struct {
	Present bool    `json:"present"`
	Hidden  bool    `json:"hidden"`
	Visible bool    `json:"visible"` // laid out: offsetParent != null, with a size
	Text    string  `json:"text"`
	AtTop   bool    `json:"atTop"` // the card's first thing, above its title
	Width   float64 `json:"width"`
	Card    float64 `json:"card"` // the card's width
	BG      string  `json:"bg"`
}

// bannerIn reads the banner of root, a document or a shadow root.
func bannerIn(t *testing.T, ctx context.Context, root string) devBanner {
	t.Helper()
	return eval[devBanner](t, ctx, fmt.Sprintf(`(() => {
  const root = %s;
  const b = root && root.getElementById("dev_banner");
  if (!b) return { present: false };
  const r = b.getBoundingClientRect();
  const card = root.getElementById("verifier").getBoundingClientRect();
  const title = root.querySelector(".vf-head h1").getBoundingClientRect();
  return {
    present: true, hidden: b.hidden, text: b.textContent.trim(),
    visible: b.offsetParent !== null && r.width > 0 && r.height > 0,
    atTop: r.top - card.top <= 2 && r.bottom <= title.top,
    width: r.width, card: card.width, bg: getComputedStyle(b).backgroundColor,
  };
})()`, root))
}

// wantBanner checks that the banner is shown, says text and sits at the
// card's top, across the card.
func wantBanner(t *testing.T, where string, b devBanner, text string) {
	t.Helper()
	switch {
	case !b.Present:
		t.Errorf("%s: no #dev_banner", where)
	case b.Hidden || !b.Visible:
		t.Errorf("%s: the dev banner is not shown: %+v", where, b)
	case b.Text != text:
		t.Errorf("%s: the dev banner says %q, want %q", where, b.Text, text)
	case !b.AtTop:
		t.Errorf("%s: the dev banner is not at the top of the card: %+v", where, b)
	case b.Width < b.Card-4:
		t.Errorf("%s: the dev banner is %.0f px wide in a %.0f px card", where, b.Width, b.Card)
	case b.BG == "" || b.BG == "rgba(0, 0, 0, 0)":
		t.Errorf("%s: the dev banner has no background, so it does not stand out", where)
	}
}

func wantNoBanner(t *testing.T, where string, b devBanner) {
	t.Helper()
	if b.Present && (!b.Hidden || b.Visible) {
		t.Errorf("%s: a dev banner shows although Twilio is configured: %+v", where, b)
	}
}

// bannerWidgets is a host page with a light and a dark widget.
const bannerWidgets = `<div id="phone-check"></div>
  <script src="%[1]s/widget.js" data-container="#phone-check" data-lang="en" data-theme="light"></script>
  <div id="dark-check"></div>
  <script src="%[1]s/widget.js" data-container="#dark-check" data-lang="en" data-theme="dark"></script>`

func widgetRoot(id string) string { return `document.getElementById("` + id + `").shadowRoot` }

func widgetOpen(id string) string {
	return widgetRoot(id) + ` && ` + widgetRoot(id) + `.getElementById("connection")?.dataset.state === "open"`
}

const pageOpen = `document.getElementById("connection").dataset.state === "open"`

func i18nStrings(t *testing.T) map[string]map[string]string {
	t.Helper()
	b, err := assets.Load(assets.Options{})
	if err != nil {
		t.Fatalf("assets.Load: %v", err)
	}
	return b.Languages
}

func TestDevBannerOnThePageAndTheWidgetWithoutTwilio(t *testing.T) {
	ctx := newBrowser(t)
	langs := i18nStrings(t)
	var verifierURL atomic.Value
	host := hostPageWith(t, &verifierURL, bannerWidgets)
	ts := startServer(t, []string{"-allowed-origins=" + host.URL}, map[string]string{"TWILIO_ACCOUNT_SID": ""})
	verifierURL.Store(ts.URL)

	step(t, ctx, "open the page", chromedp.Navigate(ts.URL+"/?lang=en"), chromedp.Poll[chromedp.Void](pageOpen))
	wantBanner(t, "page", bannerIn(t, ctx, "document"), langs["en"]["dev_mode"])
	screenshot(t, ctx, "banner-1-page-desktop")

	step(t, ctx, "phone width", chromedp.EmulateViewport(390, 844), chromedp.Reload(), chromedp.Poll[chromedp.Void](pageOpen))
	wantBanner(t, "page at 390 px", bannerIn(t, ctx, "document"), langs["en"]["dev_mode"])
	screenshot(t, ctx, "banner-2-page-phone")

	dark := emulation.SetEmulatedMediaParams{Features: []*emulation.MediaFeature{{Name: "prefers-color-scheme", Value: "dark"}}}
	if _, err := chromedp.Call(ctx, emulation.SetEmulatedMedia, dark); err != nil {
		t.Fatalf("emulate a dark scheme: %v", err)
	}
	step(t, ctx, "dark page in Spanish", chromedp.Navigate(ts.URL+"/?lang=es"), chromedp.Poll[chromedp.Void](pageOpen))
	wantBanner(t, "dark page in Spanish", bannerIn(t, ctx, "document"), langs["es"]["dev_mode"])
	screenshot(t, ctx, "banner-3-page-phone-dark-es")
	if _, err := chromedp.Call(ctx, emulation.SetEmulatedMedia, emulation.SetEmulatedMediaParams{}); err != nil {
		t.Fatalf("end the dark scheme: %v", err)
	}

	step(t, ctx, "open the host page", chromedp.EmulateViewport(1280, 800), chromedp.Navigate(host.URL),
		chromedp.Poll[chromedp.Void](widgetOpen("phone-check")+" && "+widgetOpen("dark-check")))
	light, darkOne := bannerIn(t, ctx, widgetRoot("phone-check")), bannerIn(t, ctx, widgetRoot("dark-check"))
	wantBanner(t, "light widget", light, langs["en"]["dev_mode"])
	wantBanner(t, "dark widget", darkOne, langs["en"]["dev_mode"])
	if light.BG == darkOne.BG {
		t.Errorf("the dark widget's banner has the light one's background %s", light.BG)
	}
	if n := eval[int](t, ctx, `document.querySelectorAll("#dev_banner").length`); n != 0 {
		t.Errorf("the widget put %d banners in the host page's own DOM", n)
	}
	screenshot(t, ctx, "banner-4-widget-desktop")
	step(t, ctx, "dark widget in view", chromedp.Evaluate[chromedp.Void](`document.getElementById("dark-check").scrollIntoView()`))
	screenshot(t, ctx, "banner-5-widget-desktop-dark")

	step(t, ctx, "phone width", chromedp.EmulateViewport(390, 844), chromedp.Reload(),
		chromedp.Poll[chromedp.Void](widgetOpen("phone-check")+" && "+widgetOpen("dark-check")),
		chromedp.Evaluate[chromedp.Void](`document.getElementById("phone-check").scrollIntoView()`))
	wantBanner(t, "light widget at 390 px", bannerIn(t, ctx, widgetRoot("phone-check")), langs["en"]["dev_mode"])
	wantBanner(t, "dark widget at 390 px", bannerIn(t, ctx, widgetRoot("dark-check")), langs["en"]["dev_mode"])
	screenshot(t, ctx, "banner-6-widget-phone")
	step(t, ctx, "dark widget in view", chromedp.Evaluate[chromedp.Void](`document.getElementById("dark-check").scrollIntoView()`))
	screenshot(t, ctx, "banner-7-widget-phone-dark")
}

func TestNoDevBannerWithTwilio(t *testing.T) {
	ctx := newBrowser(t)
	var verifierURL atomic.Value
	host := hostPageWith(t, &verifierURL, bannerWidgets)
	ts := startServer(t, []string{"-allowed-origins=" + host.URL}, nil) // the fake Twilio
	verifierURL.Store(ts.URL)

	step(t, ctx, "open the page", chromedp.Navigate(ts.URL+"/?lang=en"), chromedp.Poll[chromedp.Void](pageOpen))
	wantNoBanner(t, "page", bannerIn(t, ctx, "document"))
	step(t, ctx, "open the host page", chromedp.Navigate(host.URL),
		chromedp.Poll[chromedp.Void](widgetOpen("phone-check")+" && "+widgetOpen("dark-check")))
	wantNoBanner(t, "light widget", bannerIn(t, ctx, widgetRoot("phone-check")))
	wantNoBanner(t, "dark widget", bannerIn(t, ctx, widgetRoot("dark-check")))
	screenshot(t, ctx, "banner-8-widget-with-twilio")
}
