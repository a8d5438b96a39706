package main

import (
	"strings"
	"testing"

	"github.com/chromedp/chromedp"
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
	postStatus(t, ts.URL, public, phone, "delivered")
	step(t, ctx, "see the delivery", chromedp.Poll[chromedp.Void](
		`document.getElementById("update").textContent.includes("Delivered")`))
	step(t, ctx, "phone width", chromedp.EmulateViewport(390, 844))
	screenshot(t, ctx, "page-7-delivered")
	if !eval[bool](t, ctx, `!document.getElementById("verify_form").hidden`) {
		t.Fatal("the delivery report took the page off the code form")
	}
}
