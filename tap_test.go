package main

import (
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"
)

var (
	linkPattern  = regexp.MustCompile(`/v/[A-Za-z0-9_-]{48}`)
	proofPattern = regexp.MustCompile(`name="proof" value="([^"]+)"`)
)

// linkIn is the tap-to-verify link's path in the latest text to phone.
func linkIn(t *testing.T, ts *testServer, phone string) string {
	t.Helper()
	msgs := ts.Twilio.To(phone)
	if len(msgs) == 0 {
		t.Fatalf("no text to %s", phone)
	}
	path := linkPattern.FindString(msgs[len(msgs)-1].Body)
	if path == "" {
		t.Fatalf("no link in %q", msgs[len(msgs)-1].Body)
	}
	return path
}

// phoneBrowser is the phone that opens a link: it keeps cookies.
type phoneBrowser struct {
	t      *testing.T
	client *http.Client
	base   string
}

func newPhoneBrowser(t *testing.T, base string) *phoneBrowser {
	jar, _ := cookiejar.New(nil)
	return &phoneBrowser{t: t, client: &http.Client{Jar: jar, Timeout: 10 * time.Second}, base: base}
}

// get opens path and returns the status, the page and the form's proof.
func (p *phoneBrowser) get(path string) (int, string, string) {
	p.t.Helper()
	resp, err := p.client.Get(p.base + path)
	if err != nil {
		p.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if got := resp.Header.Get("Referrer-Policy"); got != "no-referrer" && resp.StatusCode == http.StatusOK {
		p.t.Errorf("Referrer-Policy %q", got)
	}
	proof := ""
	if m := proofPattern.FindStringSubmatch(string(b)); m != nil {
		proof = m[1]
	}
	return resp.StatusCode, string(b), proof
}

func (p *phoneBrowser) post(path string, form url.Values) (int, string) {
	p.t.Helper()
	return p.postWith(path, form, nil)
}

// postWith posts the form with extra headers, as a browser would add them.
func (p *phoneBrowser) postWith(path string, form url.Values, h http.Header) (int, string) {
	p.t.Helper()
	req, _ := http.NewRequest("POST", p.base+path, strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	for k, v := range h {
		req.Header[k] = v
	}
	resp, err := p.client.Do(req)
	if err != nil {
		p.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func startTapServer(t *testing.T, args ...string) *testServer {
	return startServer(t, append([]string{"-public-url=https://verify.example.com", "-max-lookups-per-ip=0"}, args...), nil)
}

func TestATapVerifiesTheWaitingPageButOpeningTheLinkDoesNot(t *testing.T) {
	ts := startTapServer(t)
	page := dial(t, ts.URL)
	page.register(phone)
	page.expect("code_generated", "")
	link := linkIn(t, ts, phone)

	phone1 := newPhoneBrowser(t, ts.URL)
	status, body, proof := phone1.get(link)
	if status != http.StatusOK || proof == "" || !strings.Contains(body, "••71") || !strings.Contains(body, "verify.example.com") {
		t.Fatalf("GET %s: %d %q", link, status, body)
	}
	newPhoneBrowser(t, ts.URL).get(link) // a link-preview bot
	page.send("resume", map[string]any{"phone_number": phone})
	page.expect("update", "code_pending") // nothing was verified by looking

	if status, _ := phone1.post(link, url.Values{}); status != http.StatusForbidden {
		t.Fatalf("POST without the proof: %d, want 403", status)
	}
	if status, _ := newPhoneBrowser(t, ts.URL).post(link, url.Values{"proof": {proof}}); status != http.StatusForbidden {
		t.Fatalf("POST with the proof but without its cookie: %d, want 403", status)
	}
	for _, h := range []http.Header{{"Origin": {"https://evil.example"}}, {"Origin": {"null"}, "Sec-Fetch-Site": {"cross-site"}}} {
		if status, _ := phone1.postWith(link, url.Values{"proof": {proof}}, h); status != http.StatusForbidden {
			t.Fatalf("POST from another site (%v): %d, want 403", h, status)
		}
	}
	status, body = phone1.post(link, url.Values{"proof": {proof}})
	if status != http.StatusOK || !strings.Contains(body, "verified") {
		t.Fatalf("POST: %d %q", status, body)
	}
	if f := page.expect("verified", ""); f.Data["token"] == nil {
		t.Fatalf("the waiting page got %v without its token", f.Data)
	}
	if status, _ := phone1.post(link, url.Values{"proof": {proof}}); status != http.StatusGone {
		t.Fatalf("the link tapped again: %d, want 410", status)
	}
	if status, _, _ := phone1.get(link); status != http.StatusGone {
		t.Fatalf("the used link opened again: %d, want 410", status)
	}
}

func TestALinkIsRefusedWhenMadeUpExpiredOrItsCodeWasUsed(t *testing.T) {
	ts := startTapServer(t, "-code-ttl=1s")
	phone1 := newPhoneBrowser(t, ts.URL)
	for _, bad := range []string{"/v/" + strings.Repeat("A", 48), "/v/short", "/v/" + strings.Repeat("é", 30)} {
		if status, _, _ := phone1.get(bad); status != http.StatusNotFound {
			t.Errorf("GET %s: %d, want 404", bad, status)
		}
	}
	c := dial(t, ts.URL)
	c.register(phone)
	c.expect("code_generated", "")
	link := linkIn(t, ts, phone)
	_, _, proof := phone1.get(link)
	time.Sleep(1100 * time.Millisecond)
	if status, body := phone1.post(link, url.Values{"proof": {proof}}); status != http.StatusGone {
		t.Fatalf("an expired link: %d %q, want 410", status, body)
	}
	c.expect("reset", "expired")

	other := numberN(7)
	c.register(other)
	c.expect("code_generated", "")
	link = linkIn(t, ts, other)
	_, _, proof = phone1.get(link)
	c.verify(other, ts.codeFor(t, other))
	c.expect("verified", "")
	if status, _ := phone1.post(link, url.Values{"proof": {proof}}); status != http.StatusGone {
		t.Fatalf("a link whose code was typed: %d, want 410", status)
	}
}

func TestNoLinksWithoutAPublicURLOrWhenTurnedOff(t *testing.T) {
	for _, args := range [][]string{nil, {"-public-url=https://verify.example.com", "-tap-links=false"}} {
		ts := startServer(t, args, nil)
		c := dial(t, ts.URL)
		c.register(phone)
		c.expect("code_generated", "")
		if body := ts.Twilio.To(phone)[0].Body; strings.Contains(body, "/v/") {
			t.Errorf("%v: the text carries a link: %q", args, body)
		}
		if status, _, _ := newPhoneBrowser(t, ts.URL).get("/v/" + strings.Repeat("A", 48)); status != http.StatusNotFound {
			t.Errorf("%v: /v/ answered %d, want 404", args, status)
		}
	}
}
