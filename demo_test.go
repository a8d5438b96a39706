package main

import (
	"net/http"
	"strings"
	"testing"
)

func demoStatus(t *testing.T, base, method, path string) int {
	t.Helper()
	req, _ := http.NewRequest(method, base+path, strings.NewReader("phone_verification_token=x"))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

func TestTheDemoShopIsServedOnlyInDevelopmentMode(t *testing.T) {
	dev := startServer(t, nil, map[string]string{"TWILIO_ACCOUNT_SID": ""})
	for _, path := range []string{"/demo/embed", "/demo.css"} {
		if s := demoStatus(t, dev.URL, "GET", path); s != 200 {
			t.Errorf("without Twilio, GET %s: %d, want 200", path, s)
		}
	}
	if s := demoStatus(t, dev.URL, "POST", "/demo/embed"); s != 200 {
		t.Errorf("without Twilio, POST /demo/embed: %d, want 200", s)
	}
	prod := startServer(t, nil, nil)
	for _, r := range [][2]string{{"GET", "/demo/embed"}, {"GET", "/demo.css"}, {"POST", "/demo/embed"}} {
		if s := demoStatus(t, prod.URL, r[0], r[1]); s != 404 {
			t.Errorf("with Twilio, %s %s: %d, want 404", r[0], r[1], s)
		}
	}
}
