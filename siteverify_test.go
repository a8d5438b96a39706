package main

import (
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/url"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"verifier/sms/faketwilio"
)

const apiKey = "test-api-key-0123456789"

var withAPIKey = map[string]string{"VERIFIER_API_KEY": apiKey}

type siteverifyAnswer struct {
	Success    bool     `json:"success"`
	Phone      string   `json:"phone_number"`
	VerifiedAt string   `json:"verified_at"`
	Test       bool     `json:"test"`
	Dev        bool     `json:"dev"`
	ErrorCodes []string `json:"error-codes"`
	RetryAfter int      `json:"retry_after"`

	keys       map[string]any // every key of the answer
	retryAfter string         // the Retry-After header
}

func siteverify(t *testing.T, base, contentType, body string) (int, siteverifyAnswer) {
	t.Helper()
	return siteverifyVia(t, http.DefaultClient, base, contentType, body)
}

func siteverifyVia(t *testing.T, c *http.Client, base, contentType, body string) (int, siteverifyAnswer) {
	t.Helper()
	resp, err := c.Post(base+"/api/siteverify", contentType, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	var a siteverifyAnswer
	if err := json.Unmarshal(raw, &a); err != nil {
		t.Fatalf("answer is not JSON: %v", err)
	}
	json.Unmarshal(raw, &a.keys)
	a.retryAfter = resp.Header.Get("Retry-After")
	return resp.StatusCode, a
}

// httpFrom is an HTTP client whose connections come from source, a
// loopback address, as requests from another host would.
func httpFrom(t *testing.T, source string) *http.Client {
	tr := &http.Transport{DialContext: (&net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(source)}}).DialContext}
	t.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Transport: tr, Timeout: 10 * time.Second}
}

func siteverifyFrom(t *testing.T, c *http.Client, base, secret, token string) (int, siteverifyAnswer) {
	t.Helper()
	b, _ := json.Marshal(map[string]string{"secret": secret, "token": token})
	return siteverifyVia(t, c, base, "application/json", string(b))
}

func siteverifyJSON(t *testing.T, base, secret, token string) (int, siteverifyAnswer) {
	t.Helper()
	b, _ := json.Marshal(map[string]string{"secret": secret, "token": token})
	return siteverify(t, base, "application/json", string(b))
}

// verifiedToken runs a flow and returns the token the page received.
func verifiedToken(t *testing.T, ts *testServer, phone string) string {
	t.Helper()
	c := dial(t, ts.URL)
	c.send("register", map[string]any{"phone_number": phone, "reverify": true})
	c.expect("code_generated", "")
	c.verify(phone, ts.codeFor(t, phone))
	return c.expect("verified", "").Data["token"].(string)
}

func TestSiteverifyAcceptsATokenOnce(t *testing.T) {
	ts := startServer(t, nil, withAPIKey)
	token := verifiedToken(t, ts, phone)
	status, a := siteverifyJSON(t, ts.URL, apiKey, token)
	if _, dev := a.keys["dev"]; status != 200 || !a.Success || a.Phone != phone || a.VerifiedAt == "" || a.Test || dev {
		t.Fatalf("first check (Twilio configured, so no dev key): %d %+v", status, a)
	}
	status, a = siteverifyJSON(t, ts.URL, apiKey, token)
	if status != 200 || a.Success || strings.Join(a.ErrorCodes, ",") != "timeout-or-duplicate" {
		t.Fatalf("replay: %d %+v", status, a)
	}
}

func TestSiteverifyTakesAFormWithResponseAsTheTokensName(t *testing.T) {
	ts := startServer(t, nil, withAPIKey)
	token := verifiedToken(t, ts, phone)
	form := url.Values{"secret": {apiKey}, "response": {token}}.Encode()
	if status, a := siteverify(t, ts.URL, "application/x-www-form-urlencoded", form); status != 200 || !a.Success {
		t.Fatalf("%d %+v", status, a)
	}
}

func TestSiteverifyErrorCodes(t *testing.T) {
	ts := startServer(t, nil, withAPIKey)
	token := verifiedToken(t, ts, phone)
	forged := token[:len(token)-2] + "AA"
	if forged == token {
		forged = token[:len(token)-2] + "BB"
	}
	form := "application/x-www-form-urlencoded"
	cases := []struct {
		name, contentType, body string
		status                  int
		codes                   string
	}{
		{"nothing", form, "", 400, "missing-input-secret,missing-input-response"},
		{"no secret", form, "token=" + token, 400, "missing-input-secret"},
		{"no token", form, "secret=" + apiKey, 400, "missing-input-response"},
		{"wrong secret", form, "secret=guess&token=" + token, 401, "invalid-input-secret"},
		{"forged token", form, "secret=" + apiKey + "&token=" + forged, 200, "invalid-input-response"},
		{"garbage token", form, "secret=" + apiKey + "&token=hello", 200, "invalid-input-response"},
		{"malformed JSON", "application/json", `{"secret":`, 400, "bad-request"},
		{"long token", form, "secret=" + apiKey + "&token=" + strings.Repeat("A", 60<<10), 200, "invalid-input-response"},
		{"body over 64 KiB", form, "secret=" + apiKey + "&token=" + strings.Repeat("A", 100<<10), 413, "request-too-large"},
	}
	for _, tc := range cases {
		status, a := siteverify(t, ts.URL, tc.contentType, tc.body)
		if status != tc.status || a.Success || strings.Join(a.ErrorCodes, ",") != tc.codes {
			t.Errorf("%s: %d %+v, want %d %s", tc.name, status, a, tc.status, tc.codes)
		}
	}
	// None of that spent the real token.
	if _, a := siteverifyJSON(t, ts.URL, apiKey, token); !a.Success {
		t.Fatalf("the real token was spent by bad requests: %+v", a)
	}
}

// Only wrong secrets count, per address, and past the budget only wrong
// secrets are refused: a flood of guesses never locks out the right key.
func TestWrongSecretsAreRateLimitedButNeverLockOutTheRightOne(t *testing.T) {
	ts := startServer(t, nil, withAPIKey)
	token := verifiedToken(t, ts, phone)
	guesser, other := httpFrom(t, "127.0.0.2"), httpFrom(t, "127.0.0.3")
	for range wrongSecretsPerMinute {
		if status, a := siteverifyFrom(t, guesser, ts.URL, "guess", "x"); status != 401 || strings.Join(a.ErrorCodes, ",") != "invalid-input-secret" {
			t.Fatalf("%d %+v, want 401 invalid-input-secret", status, a)
		}
	}
	status, a := siteverifyFrom(t, guesser, ts.URL, "guess", "x")
	if status != 429 || strings.Join(a.ErrorCodes, ",") != "rate-limited" || a.RetryAfter < 1 || a.RetryAfter > 60 ||
		a.retryAfter != strconv.Itoa(a.RetryAfter) {
		t.Fatalf("wrong secret past the budget: %d %+v, want 429 rate-limited with Retry-After", status, a)
	}
	if status, a := siteverifyFrom(t, guesser, ts.URL, apiKey, token); status != 200 || !a.Success || a.Phone != phone {
		t.Fatalf("the right secret from the guessing address: %d %+v, want success", status, a)
	}
	if status, _ := siteverifyFrom(t, other, ts.URL, "guess", "x"); status != 401 {
		t.Fatalf("another address's first wrong secret: %d, want 401", status)
	}
	ts.logs.waitContaining(t, "invalid-input-secret") // wrong secrets are logged
	ts.logs.waitContaining(t, "rate-limited")
}

// Counting and refusing are one step: guesses sent together cannot all be
// answered before any is counted. (How often a racy check would slip here
// depends on scheduling; server's test of the same name holds the
// handler's steps in lockstep and catches one every time.)
func TestParallelWrongSecretsGetNoMoreThanTheBudget(t *testing.T) {
	ts := startServer(t, nil, withAPIKey)
	const n = 50
	c := httpFrom(t, "127.0.0.4")
	body := `{"secret":"guess","token":"x"}`
	// Every request sends all but its body's last byte, then all finish at
	// once, so the server checks them as nearly together as it can.
	var ready sync.WaitGroup
	ready.Add(n)
	start := make(chan struct{})
	var mu sync.Mutex
	got := map[int]int{}
	var done sync.WaitGroup
	for range n {
		done.Go(func() {
			last := &gate{ready: &ready, start: start, rest: body[len(body)-1:]}
			req, _ := http.NewRequest("POST", ts.URL+"/api/siteverify", io.MultiReader(strings.NewReader(body[:len(body)-1]), last))
			req.ContentLength = int64(len(body))
			req.Header.Set("Content-Type", "application/json")
			resp, err := c.Do(req)
			if err != nil {
				t.Error(err)
				return
			}
			resp.Body.Close()
			mu.Lock()
			got[resp.StatusCode]++
			mu.Unlock()
		})
	}
	ready.Wait()
	close(start)
	done.Wait()
	if got[401] != wrongSecretsPerMinute || got[429] != n-wrongSecretsPerMinute {
		t.Fatalf("statuses %v, want %d×401 and %d×429", got, wrongSecretsPerMinute, n-wrongSecretsPerMinute)
	}
}

// gate is a body's last part: its first Read says the request got this far
// and waits for start.
type gate struct {
	ready *sync.WaitGroup
	start chan struct{}
	rest  string
	once  sync.Once
}

func (g *gate) Read(p []byte) (int, error) {
	g.once.Do(func() { g.ready.Done(); <-g.start })
	if g.rest == "" {
		return 0, io.EOF
	}
	n := copy(p, g.rest)
	g.rest = g.rest[n:]
	return n, nil
}

// devVerifiedToken runs a flow on a server without Twilio, reading the
// code from the dev inbox, and returns the token.
func devVerifiedToken(t *testing.T, ts *testServer, phone string) string {
	t.Helper()
	c := dial(t, ts.URL)
	c.send("register", map[string]any{"phone_number": phone, "reverify": true})
	got := map[string]frame{}
	for range 2 { // the dev inbox's copy and the answer, in either order
		f := c.next()
		got[f.Event] = f
	}
	inbox, ok := got["dev_sms"]
	if _, answered := got["code_generated"]; !ok || !answered {
		t.Fatalf("got %v, want dev_sms and code_generated", got)
	}
	c.verify(phone, faketwilio.Code(inbox.Data["body"].(string)))
	return c.expect("verified", "").Data["token"].(string)
}

func TestTokensIssuedWithoutAnSMSProviderSayDev(t *testing.T) {
	ts := startServer(t, nil, map[string]string{"TWILIO_ACCOUNT_SID": "", "VERIFIER_API_KEY": apiKey})
	token := devVerifiedToken(t, ts, phone)
	if status, a := siteverifyJSON(t, ts.URL, apiKey, token); status != 200 || !a.Success || !a.Dev || a.Test || a.Phone != phone {
		t.Fatalf("%d %+v, want success with dev: true", status, a)
	}
}

func TestTokensAndTheirSpendingSurviveARestart(t *testing.T) {
	dbPath := filepath.Join(t.TempDir(), "v.db")
	ts := startServer(t, []string{"-db=" + dbPath}, nil) // keys generated and kept
	first, second := verifiedToken(t, ts, phone), verifiedToken(t, ts, numberN(1))
	key := strings.TrimPrefix(ts.stdout.waitFor(t, "API key for /api/siteverify"), "")
	key = key[strings.LastIndex(key, " ")+1:]
	if _, a := siteverifyJSON(t, ts.URL, key, first); !a.Success {
		t.Fatalf("before restart: %+v", a)
	}
	ts.stop()

	ts = startServer(t, []string{"-db=" + dbPath}, nil)
	if _, a := siteverifyJSON(t, ts.URL, key, first); a.Success {
		t.Fatal("a spent token works again after a restart")
	}
	if _, a := siteverifyJSON(t, ts.URL, key, second); !a.Success {
		t.Fatalf("an unspent token stopped working after a restart: %+v", a)
	}
}

func TestTestNumbersGetNoTextAndAreMarkedInSiteverify(t *testing.T) {
	ts := startServer(t, []string{"-test-numbers=+15555550100=123456"}, withAPIKey)
	c := dial(t, ts.URL)
	c.register("+1 (555) 555-0100")
	c.expect("code_generated", "")
	c.verify("+15555550100", "123456")
	token := c.expect("verified", "").Data["token"].(string)
	if n := len(ts.Twilio.Messages()); n != 0 {
		t.Fatalf("%d texts sent to a test number", n)
	}
	if _, a := siteverifyJSON(t, ts.URL, apiKey, token); !a.Success || !a.Test || a.Phone != "+15555550100" {
		t.Fatalf("%+v", a)
	}
}

func TestTextsAskedFromAHostPageNameThatHostForWebOTP(t *testing.T) {
	ts := startServer(t, []string{"-allowed-origins=https://shop.example", "-public-url=https://verify.example.com", "-tap-links=false"}, nil)
	ws, _, err := websocket.DefaultDialer.Dial(wsURL(ts.URL), http.Header{"Origin": {"https://shop.example"}})
	if err != nil {
		t.Fatal(err)
	}
	defer ws.Close()
	c := &client{t: t, ws: ws}
	c.send("register", map[string]any{"phone_number": phone, "lang": "es-MX"})
	c.expect("code_generated", "")
	body := ts.Twilio.To(phone)[0].Body
	code := ts.codeFor(t, phone)
	if body != "Tu código de verificación es: "+code+"\n\n@shop.example #"+code {
		t.Fatalf("body %q", body)
	}
}
