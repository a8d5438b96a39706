package main

import (
	"encoding/json"
	"net/http"
	"net/url"
	"path/filepath"
	"strings"
	"testing"

	"github.com/gorilla/websocket"
)

const apiKey = "test-api-key-0123456789"

var withAPIKey = map[string]string{"VERIFIER_API_KEY": apiKey}

type siteverifyAnswer struct {
	Success    bool     `json:"success"`
	Phone      string   `json:"phone_number"`
	VerifiedAt string   `json:"verified_at"`
	Test       bool     `json:"test"`
	ErrorCodes []string `json:"error-codes"`
}

func siteverify(t *testing.T, base, contentType, body string) (int, siteverifyAnswer) {
	t.Helper()
	resp, err := http.Post(base+"/api/siteverify", contentType, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var a siteverifyAnswer
	if err := json.NewDecoder(resp.Body).Decode(&a); err != nil {
		t.Fatalf("answer is not JSON: %v", err)
	}
	return resp.StatusCode, a
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
	if status != 200 || !a.Success || a.Phone != phone || a.VerifiedAt == "" || a.Test {
		t.Fatalf("first check: %d %+v", status, a)
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
		{"huge body", form, "secret=" + apiKey + "&token=" + strings.Repeat("A", 20000), 400, "bad-request"},
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

func TestWrongSecretsAreRateLimited(t *testing.T) {
	ts := startServer(t, nil, withAPIKey)
	for range 10 {
		if status, _ := siteverifyJSON(t, ts.URL, "guess", "x"); status != 401 {
			t.Fatalf("status %d, want 401", status)
		}
	}
	status, a := siteverifyJSON(t, ts.URL, apiKey, "x") // even the right secret waits now
	if status != 429 || strings.Join(a.ErrorCodes, ",") != "rate-limited" {
		t.Fatalf("%d %+v, want 429 rate-limited", status, a)
	}
	if !strings.Contains(ts.logs.String(), "invalid-input-secret") {
		t.Fatal("wrong secrets were not logged")
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
	ts := startServer(t, []string{"-allowed-origins=https://shop.example", "-public-url=https://verify.example.com"}, nil)
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
