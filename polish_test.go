package main

import (
	"io"
	"net/http"
	"strings"
	"testing"
)

// What Lighthouse's best-practices and SEO audits ask of the pages: a
// favicon that answers (no 404 in the console) and a meta description.
func TestPagesNameAFaviconThatAnswersAndDescribeThemselves(t *testing.T) {
	ts := startServer(t, []string{"-demo"}, nil)
	for _, path := range []string{"/", "/demo/embed"} {
		body := get(t, ts.URL+path, "text/html")
		if !strings.Contains(body, `<link rel="icon" href="/favicon.svg"`) || !strings.Contains(body, `<meta name="description" content="`) {
			t.Errorf("%s lacks the icon link or the meta description", path)
		}
	}
	for _, path := range []string{"/favicon.svg", "/favicon.ico"} {
		if body := get(t, ts.URL+path, "image/svg+xml"); !strings.HasPrefix(body, "<svg") {
			t.Errorf("%s is not the icon", path)
		}
	}
}

func get(t *testing.T, url, contentType string) string {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 || !strings.HasPrefix(resp.Header.Get("Content-Type"), contentType) {
		t.Fatalf("GET %s: %d %s", url, resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	return string(b)
}
