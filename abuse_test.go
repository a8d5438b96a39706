package main

import (
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"
)

// Black-box tests of the abuse protections: the wrong-code budget per
// number, the per-number send count kept in the record, the lookup budget
// per client, answers that carry no dates, and who the client is behind a
// trusted proxy. Each runs the whole server and speaks only the protocol,
// from several loopback source addresses where the address matters.

const (
	testNumber = "+15555550100"
	testCode   = "123456"
)

// dialVia opens a WebSocket from a loopback source address carrying extra
// request headers (X-Forwarded-For, Forwarded), as a client behind a proxy,
// or pretending to be, would. The handshake's error and response are
// returned rather than failing the test.
func dialVia(t *testing.T, base, source string, extra http.Header) (*client, *http.Response, error) {
	t.Helper()
	h := http.Header{"Origin": {base}}
	for k, v := range extra {
		h[http.CanonicalHeaderKey(k)] = v
	}
	d := websocket.Dialer{HandshakeTimeout: 5 * time.Second,
		NetDialContext: (&net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(source)}}).DialContext}
	ws, resp, err := d.Dial(wsURL(base), h)
	if err != nil {
		return nil, resp, err
	}
	t.Cleanup(func() { ws.Close() })
	return &client{t: t, ws: ws}, resp, nil
}

// mustDialVia is dialVia for a handshake that must succeed.
func mustDialVia(t *testing.T, base, source string, extra http.Header) *client {
	t.Helper()
	c, resp, err := dialVia(t, base, source, extra)
	if err != nil {
		status := 0
		if resp != nil {
			status = resp.StatusCode
		}
		t.Fatalf("dial from %s with %v: %v (HTTP %d)", source, extra, err, status)
	}
	return c
}

func xff(v ...string) http.Header { return http.Header{"X-Forwarded-For": v} }

// retryAfter checks that f is update rate_limited with a retry_after in
// (0, max] seconds, and returns it.
func retryAfter(t *testing.T, f frame, max time.Duration) float64 {
	t.Helper()
	s, ok := f.Data["retry_after"].(float64)
	if f.Event != "update" || f.reason() != "rate_limited" || !ok || s <= 0 || s > max.Seconds() {
		t.Fatalf("got %s %v, want update rate_limited with 0 < retry_after <= %v", f.Event, f.Data, max)
	}
	return s
}

func reverify(c *client, phone string) {
	c.t.Helper()
	c.send("register", map[string]any{"phone_number": phone, "reverify": true})
}

// guessWrong asks for a code for phone and types n wrong codes, asking
// for a fresh code every perCode guesses so that no code is voided by
// -max-attempts and every guess meets a live code. Each code asked for
// opens a new connection from source, as a script would, so the frame-rate
// cap of one connection never stops it first.
func guessWrong(t *testing.T, base, source, phone string, n, perCode int) *client {
	t.Helper()
	var c *client
	for i := range n {
		if i%perCode == 0 {
			c = dialFrom(t, base, source)
			reverify(c, phone)
			c.expect("code_generated", "")
		}
		c.verify(phone, fmt.Sprintf("%06d", i)) // never the test code 123456
		c.expect("update", "wrong_code")
	}
	return c
}

// A script that registers a test number (fixed code, no text, so no send
// limit applies) and guesses in a loop is stopped by the number's
// wrong-code budget, -max-attempts x -max-sms-per-number = 25 an hour by
// default: past it the right code is refused too, new codes are refused,
// from any connection and address, and a restart forgets none of it.
func TestGuessingATestNumbersCodeIsStoppedByItsWrongCodeBudgetAcrossARestart(t *testing.T) {
	dbPath := filepath.Join(t.TempDir(), "v.db")
	// -resend-after=0s lets the script replace its code before -max-attempts
	// voids it, so a live code is pending when the budget runs out.
	args := []string{"-db=" + dbPath, "-test-numbers=" + testNumber + "=" + testCode, "-resend-after=0s"}
	ts := startServer(t, args, nil)

	wrong := 0
	var script *client
guessing:
	for round := 0; ; round++ {
		if round > 20 {
			t.Fatalf("%d wrong guesses and the script was never stopped", wrong)
		}
		script = dialFrom(t, ts.URL, "127.0.0.2")
		script.register(testNumber)
		if f := script.next(); f.Event != "code_generated" {
			retryAfter(t, f, time.Hour)
			break
		}
		for range 4 { // under -max-attempts (5): the code stays live
			script.verify(testNumber, fmt.Sprintf("%06d", wrong))
			f := script.next()
			if f.reason() == "rate_limited" {
				retryAfter(t, f, time.Hour)
				break guessing
			}
			if f.Event != "update" || f.reason() != "wrong_code" {
				t.Fatalf("wrong guess %d: %s %v", wrong+1, f.Event, f.Data)
			}
			wrong++
		}
	}
	if wrong != 25 {
		t.Fatalf("the script was stopped after %d wrong guesses, want 25 (-max-attempts 5 x -max-sms-per-number 5)", wrong)
	}
	script.verify(testNumber, testCode)
	retryAfter(t, script.next(), time.Hour)

	// Another connection from another address: the budget is the number's.
	other := dialFrom(t, ts.URL, "127.0.0.3")
	other.send("resume", map[string]any{"phone_number": testNumber})
	other.expect("update", "code_pending") // the last code is live, and still refused:
	other.verify(testNumber, testCode)
	retryAfter(t, other.next(), time.Hour)
	other.register(testNumber)
	retryAfter(t, other.next(), time.Hour)
	reverify(other, testNumber)
	retryAfter(t, other.next(), time.Hour)

	ts.stop()
	ts = startServer(t, args, nil)
	after := dialFrom(t, ts.URL, "127.0.0.4")
	after.verify(testNumber, testCode)
	retryAfter(t, after.next(), time.Hour)
	reverify(after, testNumber)
	retryAfter(t, after.next(), time.Hour)
}

// -max-wrong-codes-per-number sets the budget; left unset it follows
// -max-attempts x -max-sms-per-number. One wrong code short of the budget
// the right code works; at the budget it does not.
func TestMaxWrongCodesPerNumberSetsTheBudget(t *testing.T) {
	const short = "+15555550101" // guessed one short of the budget
	numbers := "-test-numbers=" + testNumber + "=" + testCode + "," + short + "=" + testCode
	for _, tc := range []struct {
		name    string
		args    []string
		budget  int
		perCode int // guesses per code, under -max-attempts
	}{
		{"explicit", []string{"-max-wrong-codes-per-number=3"}, 3, 4},
		{"explicit over the default", []string{"-max-wrong-codes-per-number=30"}, 30, 4},
		{"derived", []string{"-max-attempts=2", "-max-sms-per-number=2"}, 4, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ts := startServer(t, append([]string{numbers, "-resend-after=0s"}, tc.args...), nil)

			c := guessWrong(t, ts.URL, "127.0.0.2", short, tc.budget-1, tc.perCode)
			c.verify(short, testCode)
			c.expect("verified", "")

			c = guessWrong(t, ts.URL, "127.0.0.2", testNumber, tc.budget, tc.perCode)
			c.verify(testNumber, testCode)
			retryAfter(t, c.next(), time.Hour)
		})
	}
}

// Typing a test number's right code costs nothing: forty flows in a row
// (more than the wrong-code budget and the per-number send count) all
// verify, and no text is sent.
func TestATestNumbersRightCodeNeverCostsBudget(t *testing.T) {
	ts := startServer(t, []string{"-test-numbers=" + testNumber + "=" + testCode}, nil)
	var c *client
	for i := range 40 {
		if i%10 == 0 { // within one connection's frame burst
			c = dialFrom(t, ts.URL, "127.0.0.2")
		}
		reverify(c, testNumber)
		if f := c.next(); f.Event != "code_generated" {
			t.Fatalf("register %d: %s %v", i+1, f.Event, f.Data)
		}
		c.verify(testNumber, testCode)
		if f := c.next(); f.Event != "verified" {
			t.Fatalf("right code %d: %s %v", i+1, f.Event, f.Data)
		}
	}
	if n := len(ts.Twilio.Messages()); n != 0 {
		t.Fatalf("%d texts to a test number", n)
	}
}

// The per-number send count lives in the number's record: five texts, a
// restart, and the sixth is still refused, from another address, while
// another number still gets its code.
func TestThePerNumberSendCountSurvivesARestart(t *testing.T) {
	dbPath := filepath.Join(t.TempDir(), "v.db")
	args := []string{"-db=" + dbPath, "-resend-after=0s"}
	ts := startServer(t, args, nil)
	n := numberN(30)
	c := dialFrom(t, ts.URL, "127.0.0.2")
	for i := range 5 {
		c.register(n)
		if f := c.next(); f.Event != "code_generated" {
			t.Fatalf("send %d: %s %v", i+1, f.Event, f.Data)
		}
	}
	if got := len(ts.Twilio.To(n)); got != 5 {
		t.Fatalf("%d texts, want 5", got)
	}
	c.register(n)
	retryAfter(t, c.next(), time.Hour)

	ts.stop()
	ts = startServer(t, args, nil)
	c = dialFrom(t, ts.URL, "127.0.0.3")
	c.register(n)
	retryAfter(t, c.next(), time.Hour)
	reverify(c, n)
	retryAfter(t, c.next(), time.Hour)
	if got := len(ts.Twilio.To(n)); got != 0 {
		t.Fatalf("%d texts to %s after the restart, want 0", got, n)
	}
	c.register(numberN(31))
	c.expect("code_generated", "")
}

// Answers read from state without sending (resume, already_verified,
// already_requested) cost one of -max-lookups-per-ip per client address;
// a register that sends a code costs none.
func TestLookupBudgetPerClientAddress(t *testing.T) {
	ts := startServer(t, []string{"-max-lookups-per-ip=3"}, nil)
	verified, pending := numberN(60), numberN(61)
	setup := dialFrom(t, ts.URL, "127.0.0.9")
	setup.register(verified)
	setup.expect("code_generated", "")
	setup.verify(verified, ts.codeFor(t, verified))
	setup.expect("verified", "")
	setup.register(pending)
	setup.expect("code_generated", "")

	resume := func(c *client, phone string) frame {
		c.t.Helper()
		c.send("resume", map[string]any{"phone_number": phone})
		return c.next()
	}

	// Three resumes, each on a new connection, are answered; the fourth is not.
	a := "127.0.0.2"
	if f := resume(dialFrom(t, ts.URL, a), numberN(62)); f.Event != "reset" || f.reason() != "not_requested" {
		t.Fatalf("resume 1: %s %v", f.Event, f.Data)
	}
	if f := resume(dialFrom(t, ts.URL, a), pending); f.reason() != "code_pending" {
		t.Fatalf("resume 2: %s %v", f.Event, f.Data)
	}
	if f := resume(dialFrom(t, ts.URL, a), verified); f.reason() != "already_verified" {
		t.Fatalf("resume 3: %s %v", f.Event, f.Data)
	}
	c := dialFrom(t, ts.URL, a)
	retryAfter(t, resume(c, numberN(63)), time.Hour)
	c.register(verified) // the answer would be read from state: withheld too
	retryAfter(t, c.next(), time.Hour)
	c.register(pending)
	retryAfter(t, c.next(), time.Hour)
	c.register(numberN(64)) // sending is not a lookup, and is not refused as one
	c.expect("code_generated", "")

	// Registers answered from state count as lookups.
	b := dialFrom(t, ts.URL, "127.0.0.4")
	b.register(verified) // no reverify
	b.expect("update", "already_verified")
	b.register(pending) // within -resend-after
	b.expect("update", "already_requested")
	if f := resume(b, numberN(65)); f.reason() != "not_requested" {
		t.Fatalf("third lookup: %s %v", f.Event, f.Data)
	}
	retryAfter(t, resume(b, numberN(66)), time.Hour)

	// Registers that send a code are not lookups.
	s := dialFrom(t, ts.URL, "127.0.0.5")
	for i := range 3 {
		s.register(numberN(70 + i))
		s.expect("code_generated", "")
	}
	for i := range 3 {
		if f := resume(s, numberN(70+i)); f.reason() != "code_pending" {
			t.Fatalf("lookup %d after three sends: %s %v", i+1, f.Event, f.Data)
		}
	}
	retryAfter(t, resume(s, numberN(73)), time.Hour)

	// Another address has its own budget.
	d := dialFrom(t, ts.URL, "127.0.0.3")
	if f := resume(d, numberN(63)); f.reason() != "not_requested" {
		t.Fatalf("another address's resume: %s %v", f.Event, f.Data)
	}
	d.register(verified)
	d.expect("update", "already_verified")
}

// already_verified, whether answered to register (without reverify) or to
// resume, tells a stranger nothing about when the number was verified.
func TestLookupAnswersCarryNoVerifiedAt(t *testing.T) {
	ts := startServer(t, nil, nil)
	owner, code := ts.requestCode(t, phone)
	owner.verify(phone, code)
	if f := owner.expect("verified", ""); f.Data["verified_at"] == nil {
		t.Fatalf("verified carries no verified_at: %v", f.Data)
	}
	year := time.Now().UTC().Format("2006")

	stranger := dialFrom(t, ts.URL, "127.0.0.2")
	stranger.register(phone)
	answers := []frame{stranger.expect("update", "already_verified")}
	stranger.send("resume", map[string]any{"phone_number": phone})
	answers = append(answers, stranger.expect("update", "already_verified"))
	stranger.send("resume", map[string]any{"phone_number": phone, "lang": "fr"})
	answers = append(answers, stranger.expect("update", "already_verified"))
	for i, f := range answers {
		if _, has := f.Data["verified_at"]; has {
			t.Errorf("answer %d carries verified_at: %v", i+1, f.Data)
		}
		if msg, _ := f.Data["message"].(string); msg == "" || strings.Contains(msg, year) {
			t.Errorf("answer %d's message names a date or is empty: %q", i+1, msg)
		}
		if f.Data["phone_number"] != phone {
			t.Errorf("answer %d: phone_number %v", i+1, f.Data["phone_number"])
		}
	}
}

// Without -trusted-proxies forwarding headers are ignored: a script that
// forges new X-Forwarded-For and Forwarded headers on every WebSocket from
// one address is counted as that address.
func TestForgedForwardingHeadersFromAnUntrustedPeerBuyNothing(t *testing.T) {
	ts := startServer(t, []string{"-max-sms-per-ip=2"}, nil)
	var answers []string
	for i := range 3 {
		forged := http.Header{
			"X-Forwarded-For": {fmt.Sprintf("198.51.100.%d", 10+i), fmt.Sprintf("203.0.113.%d", 10+i)},
			"Forwarded":       {fmt.Sprintf(`for="[2001:db8:%x::1]:4711";proto=https`, i+1)},
		}
		c := mustDialVia(t, ts.URL, "127.0.0.2", forged)
		c.register(fmt.Sprintf("+1415555%d%03d", i, i))
		f := c.next()
		answers = append(answers, strings.TrimSpace(f.Event+" "+f.reason()))
		if i == 2 {
			retryAfter(t, f, time.Hour)
		}
	}
	if got := strings.Join(answers, ", "); got != "code_generated, code_generated, update rate_limited" {
		t.Fatalf("answers %s, want two codes then rate_limited", got)
	}
	// Another address is not held back by the forger.
	c := dialFrom(t, ts.URL, "127.0.0.3")
	c.register("+14155559000")
	c.expect("code_generated", "")
}

// With -trusted-proxies, a request from a trusted proxy is counted as the
// right-most forwarded address that is not itself a trusted proxy; a
// request from anyone else is counted as its TCP peer whatever it carries.
func TestATrustedProxysForwardedClientIsCountedRightMostFirst(t *testing.T) {
	const proxy = "127.0.0.1"
	args := []string{"-trusted-proxies=127.0.0.1/32", "-max-sms-per-ip=2", "-max-sms-per-prefix=0"}
	sent := 0
	register := func(t *testing.T, ts *testServer, source string, h http.Header) frame {
		t.Helper()
		c := mustDialVia(t, ts.URL, source, h)
		sent++
		c.register(fmt.Sprintf("+1415555%04d", 3000+sent))
		return c.next()
	}
	wantCode := func(t *testing.T, f frame, what string) {
		t.Helper()
		if f.Event != "code_generated" {
			t.Fatalf("%s: %s %v, want code_generated", what, f.Event, f.Data)
		}
	}

	t.Run("each forwarded client has its own budget", func(t *testing.T) {
		ts := startServer(t, args, nil)
		wantCode(t, register(t, ts, proxy, xff("192.0.2.10")), "A's first")
		wantCode(t, register(t, ts, proxy, xff("192.0.2.10")), "A's second")
		wantCode(t, register(t, ts, proxy, xff("192.0.2.20")), "B's first, through the same proxy")
		wantCode(t, register(t, ts, proxy, xff("192.0.2.20")), "B's second")
		retryAfter(t, register(t, ts, proxy, xff("192.0.2.10")), time.Hour)
		retryAfter(t, register(t, ts, proxy, xff("192.0.2.20")), time.Hour)
		// The proxy's own requests, without the header, are its own.
		wantCode(t, register(t, ts, proxy, nil), "the proxy itself")
	})

	t.Run("the right-most untrusted address wins", func(t *testing.T) {
		ts := startServer(t, args, nil)
		wantCode(t, register(t, ts, proxy, xff("198.51.100.7")), "first for .7")
		wantCode(t, register(t, ts, proxy, xff("10.9.9.9, 198.51.100.7")), "second for .7, a forged hop left of it")
		// 198.51.100.7's budget is spent; a forged left-most address changes nothing.
		retryAfter(t, register(t, ts, proxy, xff("203.0.113.9, 198.51.100.7")), time.Hour)
		retryAfter(t, register(t, ts, proxy, xff("203.0.113.9", "198.51.100.7")), time.Hour) // two header lines
		retryAfter(t, register(t, ts, proxy, xff("198.51.100.7, 127.0.0.1")), time.Hour)     // a trusted hop is skipped
		retryAfter(t, register(t, ts, proxy, http.Header{"Forwarded": {`for=203.0.113.9, for="198.51.100.7:4711"`}}), time.Hour)
		// With 203.0.113.9 right-most, it is the client, and it has its budget.
		wantCode(t, register(t, ts, proxy, xff("198.51.100.7, 203.0.113.9")), "203.0.113.9 right-most")
		wantCode(t, register(t, ts, proxy, http.Header{"Forwarded": {`for=198.51.100.7;proto=https, for="203.0.113.9"`}}), "203.0.113.9 right-most in Forwarded")
		retryAfter(t, register(t, ts, proxy, xff("203.0.113.9")), time.Hour)
	})

	t.Run("an untrusted peer is counted by its address", func(t *testing.T) {
		ts := startServer(t, args, nil)
		wantCode(t, register(t, ts, proxy, xff("192.0.2.10")), "A's first")
		wantCode(t, register(t, ts, proxy, xff("192.0.2.10")), "A's second")
		// From 127.0.0.2 the header is not believed: naming the spent A
		// costs A nothing, and rotating it buys nothing.
		wantCode(t, register(t, ts, "127.0.0.2", xff("192.0.2.10")), "127.0.0.2 naming A")
		wantCode(t, register(t, ts, "127.0.0.2", xff("192.0.2.30")), "127.0.0.2's second")
		retryAfter(t, register(t, ts, "127.0.0.2", xff("192.0.2.40")), time.Hour)
		retryAfter(t, register(t, ts, "127.0.0.2", http.Header{"Forwarded": {"for=192.0.2.50"}}), time.Hour)
	})
}

// The per-address connection cap and siteverify's wrong-secret budget
// name the client the same way as the send limits: through a trusted
// proxy, by the forwarded address.
func TestConnectionCapAndSiteverifyCountTheForwardedClient(t *testing.T) {
	const proxy = "127.0.0.1"
	ts := startServer(t, []string{"-trusted-proxies=127.0.0.1", "-max-connections-per-ip=2"}, withAPIKey)

	t.Run("connections", func(t *testing.T) {
		refused := func(source string, h http.Header) {
			t.Helper()
			_, resp, err := dialVia(t, ts.URL, source, h)
			if err == nil || resp == nil || resp.StatusCode != http.StatusTooManyRequests {
				t.Fatalf("connection from %s with %v: %v %v, want 429", source, h, err, resp)
			}
		}
		mustDialVia(t, ts.URL, proxy, xff("192.0.2.10"))
		mustDialVia(t, ts.URL, proxy, xff("203.0.113.9, 192.0.2.10"))
		refused(proxy, xff("192.0.2.10"))
		refused(proxy, xff("198.51.100.1, 192.0.2.10"))
		mustDialVia(t, ts.URL, proxy, xff("192.0.2.20")) // another client behind the same proxy
		mustDialVia(t, ts.URL, proxy, xff("192.0.2.20"))
		mustDialVia(t, ts.URL, proxy, nil) // the proxy itself
		// An untrusted peer is capped by its address, whatever it forges.
		mustDialVia(t, ts.URL, "127.0.0.2", xff("192.0.2.30"))
		mustDialVia(t, ts.URL, "127.0.0.2", xff("192.0.2.31"))
		refused("127.0.0.2", xff("192.0.2.32"))
	})

	t.Run("siteverify wrong secrets", func(t *testing.T) {
		hc := httpFrom(t, proxy)
		post := func(client string) int {
			t.Helper()
			req, _ := http.NewRequest("POST", ts.URL+"/api/siteverify", strings.NewReader(`{"secret":"guess","token":"x"}`))
			req.Header.Set("Content-Type", "application/json")
			req.Header.Set("X-Forwarded-For", client)
			resp, err := hc.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			var a struct {
				ErrorCodes []string `json:"error-codes"`
			}
			b, _ := io.ReadAll(resp.Body)
			json.Unmarshal(b, &a)
			if want := map[int]string{401: "invalid-input-secret", 429: "rate-limited"}[resp.StatusCode]; strings.Join(a.ErrorCodes, ",") != want {
				t.Fatalf("%d %s", resp.StatusCode, b)
			}
			return resp.StatusCode
		}
		for i := range wrongSecretsPerMinute {
			if got := post("192.0.2.10"); got != 401 {
				t.Fatalf("wrong secret %d from 192.0.2.10: %d, want 401", i+1, got)
			}
		}
		if got := post("192.0.2.10"); got != 429 {
			t.Fatalf("wrong secret past the budget: %d, want 429", got)
		}
		if got := post("192.0.2.20"); got != 401 {
			t.Fatalf("another client behind the same proxy: %d, want 401", got)
		}
	})
}

// A verify answer is read from state too: typing any code for a number
// says whether a code is pending there (wrong_code) or not
// (not_requested). Past its lookup budget a client must not keep learning
// that by verify, or walking a list of numbers goes on unhindered, each
// probe burning one of the owner's attempts.
//
// KNOWN GAP: this fails today; verify costs no lookup.
func TestLookupBudgetCoversVerifyProbesOfPendingCodes(t *testing.T) {
	ts := startServer(t, []string{"-max-lookups-per-ip=2"}, nil)
	pending, idle := numberN(90), numberN(91)
	owner := dialFrom(t, ts.URL, "127.0.0.9")
	owner.register(pending)
	owner.expect("code_generated", "")

	prober := dialFrom(t, ts.URL, "127.0.0.2")
	for i := range 2 {
		prober.send("resume", map[string]any{"phone_number": numberN(92 + i)})
		prober.expect("reset", "not_requested")
	}
	prober.send("resume", map[string]any{"phone_number": pending})
	retryAfter(t, prober.next(), time.Hour) // the budget is spent
	answer := func(phone string) string {
		prober.verify(phone, "000000")
		f := prober.next()
		return f.Event + " " + f.reason()
	}
	if a, b := answer(pending), answer(idle); a != b {
		t.Fatalf("past its lookup budget a client still tells a number with a code pending (%s) from one without (%s)", a, b)
	}
}
