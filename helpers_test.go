package main

import (
	"bufio"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"verifier/sms/faketwilio"
)

const (
	fakeSID   = "AC00000000000000000000000000000001"
	fakeToken = "secrettoken123"
)

// noLimits lifts every send cap and the lookup budget, so tests of other
// rules can send and check freely.
var noLimits = []string{"-max-sms-per-minute=0", "-max-sms-per-hour=0", "-max-sms-per-ip=0", "-max-lookups-per-ip=0",
	"-max-sms-per-number=0", "-max-sms-per-connection=0", "-max-sms-per-prefix=0"}

// testServer is the whole server started through run on a loopback port,
// texting through twilio-go to a fake Twilio.
type testServer struct {
	URL    string // http://127.0.0.1:port
	Twilio *faketwilio.Server
	stdout *lineBuffer
	logs   *lineBuffer // standard error
	stop   func()
}

// lineBuffer collects standard output and tells when a line appears.
type lineBuffer struct {
	mu    sync.Mutex
	lines []string
	added chan struct{}
	ended chan struct{} // closed when the writer has closed and every line is in
}

func newLineBuffer() *lineBuffer {
	return &lineBuffer{added: make(chan struct{}, 1), ended: make(chan struct{})}
}

func (b *lineBuffer) consume(r io.Reader) {
	defer close(b.ended)
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		b.mu.Lock()
		b.lines = append(b.lines, sc.Text())
		b.mu.Unlock()
		select {
		case b.added <- struct{}{}:
		default:
		}
	}
}

func (b *lineBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return strings.Join(b.lines, "\n")
}

func (b *lineBuffer) waitFor(t testing.TB, prefix string) string {
	t.Helper()
	return b.waitLine(t, prefix, strings.HasPrefix)
}

// waitContaining waits for a line holding part: log lines reach standard
// error up to 100 ms after they are written.
func (b *lineBuffer) waitContaining(t testing.TB, part string) string {
	t.Helper()
	return b.waitLine(t, part, strings.Contains)
}

func (b *lineBuffer) waitLine(t testing.TB, want string, match func(line, want string) bool) string {
	t.Helper()
	deadline := time.After(10 * time.Second)
	for {
		b.mu.Lock()
		for _, l := range b.lines {
			if match(l, want) {
				b.mu.Unlock()
				return l
			}
		}
		b.mu.Unlock()
		select {
		case <-b.added:
		case <-deadline:
			t.Fatalf("no line matching %q in %q", want, b.lines)
		}
	}
}

// startServer runs the server with args; env adds variables. Twilio is the
// fake unless env sets TWILIO_ACCOUNT_SID to "".
func startServer(t testing.TB, args []string, env map[string]string) *testServer {
	t.Helper()
	fake := faketwilio.New(fakeSID, fakeToken)
	twilioSrv := httptest.NewServer(fake)
	t.Cleanup(twilioSrv.Close)
	vars := map[string]string{
		"TWILIO_ACCOUNT_SID": fakeSID, "TWILIO_AUTH_TOKEN": fakeToken,
		"TWILIO_FROM_NUMBER": "+15005550006", "TWILIO_API_URL": twilioSrv.URL,
	}
	for k, v := range env {
		vars[k] = v
	}
	args = append([]string{"-addr=127.0.0.1:0", "-db=" + filepath.Join(t.TempDir(), "v.db")}, args...)
	args = append(args, storeArgs(t, args)...)

	ctx, cancel := context.WithCancel(context.Background())
	pr, pw := io.Pipe()
	out := newLineBuffer()
	go out.consume(pr)
	errR, errW := io.Pipe()
	logs := newLineBuffer()
	go logs.consume(errR)
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, args, func(k string) string { return vars[k] }, pw, errW)
		pw.Close()
		errW.Close()
	}()
	ts := &testServer{Twilio: fake, stdout: out, logs: logs}
	ts.stop = sync.OnceFunc(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("run: %v", err)
			}
			// The last lines may still be on their way through the pipe.
			<-out.ended
			<-logs.ended
		case <-time.After(15 * time.Second):
			t.Error("server did not stop within 15 s")
		}
	})
	t.Cleanup(ts.stop)

	line := out.waitFor(t, "verifier listening on ")
	ts.URL = strings.TrimPrefix(line, "verifier listening on ")
	waitHealthy(t, ts.URL)
	return ts
}

// storeArgs put a test server's state in Redis, under a prefix of its own,
// when VERIFIER_TEST_STORE=redis (with VERIFIER_TEST_REDIS): the whole
// suite then runs against the Redis store (.ci/run does it once more so).
func storeArgs(t testing.TB, args []string) []string {
	if os.Getenv("VERIFIER_TEST_STORE") != "redis" {
		return nil
	}
	addr := os.Getenv("VERIFIER_TEST_REDIS")
	if addr == "" {
		t.Fatal("VERIFIER_TEST_STORE=redis needs VERIFIER_TEST_REDIS")
	}
	// One prefix per database file the test names (the last -db wins, as
	// in the flags), so a restarted server finds its state and two
	// servers of one test keep theirs apart.
	dbPath := ""
	for _, a := range args {
		if v, ok := strings.CutPrefix(a, "-db="); ok {
			dbPath = v
		}
	}
	sum := sha256.Sum256([]byte(dbPath))
	prefix := "suite-" + suiteRun + "-" + hex.EncodeToString(sum[:6]) + ":"
	t.Cleanup(func() { cleanPrefix(addr, prefix) })
	return []string{"-store=redis://" + addr + "/0", "-store-prefix=" + prefix}
}

// suiteRun tells this run's keys from an earlier one's.
var suiteRun = func() string {
	b := make([]byte, 4)
	rand.Read(b)
	return hex.EncodeToString(b)
}()

// needsFile skips a test of the bbolt store itself (its file, its
// goroutines, its commands) when the suite runs against Redis.
func needsFile(t testing.TB) {
	if os.Getenv("VERIFIER_TEST_STORE") == "redis" {
		t.Skip("tests the bbolt store itself: skipped with VERIFIER_TEST_STORE=redis")
	}
}

func waitHealthy(t testing.TB, base string) {
	t.Helper()
	for range 100 {
		resp, err := http.Get(base + "/healthz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("%s/healthz never answered 200", base)
}

func wsURL(base string) string { return "ws" + strings.TrimPrefix(base, "http") + "/ws" }

// client is a real gorilla WebSocket client speaking the protocol.
type client struct {
	t  testing.TB
	ws *websocket.Conn
}

type frame struct {
	Event string         `json:"event"`
	Data  map[string]any `json:"data"`
}

func (f frame) reason() string { s, _ := f.Data["reason"].(string); return s }

func dial(t testing.TB, base string) *client {
	t.Helper()
	ws, resp, err := websocket.DefaultDialer.Dial(wsURL(base), http.Header{"Origin": {base}})
	if err != nil {
		t.Fatalf("dial: %v (%v)", err, resp)
	}
	t.Cleanup(func() { ws.Close() })
	return &client{t: t, ws: ws}
}

func (c *client) send(event string, data any) {
	c.t.Helper()
	b, _ := json.Marshal(map[string]any{"event": event, "data": data})
	c.sendRaw(string(b))
}

func (c *client) sendRaw(s string) {
	c.t.Helper()
	if err := c.ws.WriteMessage(websocket.TextMessage, []byte(s)); err != nil {
		c.t.Fatalf("write: %v", err)
	}
}

func (c *client) next() frame {
	c.t.Helper()
	c.ws.SetReadDeadline(time.Now().Add(10 * time.Second))
	var f frame
	if err := c.ws.ReadJSON(&f); err != nil {
		c.t.Fatalf("read: %v", err)
	}
	return f
}

// expect reads the next frame and checks its event and, if given, reason.
func (c *client) expect(event, reason string) frame {
	c.t.Helper()
	f := c.next()
	if f.Event != event || (reason != "" && f.reason() != reason) {
		c.t.Fatalf("got %s %v, want %s %s", f.Event, f.Data, event, reason)
	}
	return f
}

func (c *client) register(phone string) { c.send("register", map[string]any{"phone_number": phone}) }
func (c *client) verify(phone, code string) {
	c.send("verify", map[string]any{"phone_number": phone, "code": code})
}

// codeFor waits for the fake Twilio's latest message to phone.
func (ts *testServer) codeFor(t testing.TB, phone string) string {
	t.Helper()
	code := ts.Twilio.LastCode(phone)
	if code == "" {
		t.Fatalf("no text reached the fake Twilio for %s", phone)
	}
	return code
}

// requestCode opens a connection, asks for a code for phone and returns
// the connection and the code the fake Twilio received.
func (ts *testServer) requestCode(t testing.TB, phone string) (*client, string) {
	t.Helper()
	c := dial(t, ts.URL)
	c.register(phone)
	c.expect("code_generated", "")
	return c, ts.codeFor(t, phone)
}

// wrongCode is a code of the same length that is not code.
func wrongCode(code string) string {
	if code[0] == '9' {
		return "0" + code[1:]
	}
	return string(code[0]+1) + code[1:]
}

func numberN(i int) string { return fmt.Sprintf("+1415555%04d", 2000+i) }

// postTwilio posts form to target as Twilio would, signed with token for
// the URL Twilio was given (signedFor), and returns the status and body.
func postTwilio(t testing.TB, target, signedFor, token string, form url.Values) (int, string) {
	t.Helper()
	req, err := http.NewRequest("POST", target, strings.NewReader(form.Encode()))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("X-Twilio-Signature", faketwilio.Sign(token, signedFor, form))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// signedStatus posts a delivery report as Twilio would, signed for the
// callback URL Twilio was given, and returns the HTTP status.
func signedStatus(t testing.TB, base, callback string, form url.Values) int {
	t.Helper()
	status, _ := postTwilio(t, base+"/twilio/status", callback, fakeToken, form)
	return status
}

// postStatus reports status for the text to to, and wants it taken.
func postStatus(t testing.TB, base, public, to, status string) {
	t.Helper()
	form := url.Values{"MessageSid": {"SM1"}, "MessageStatus": {status}, "To": {to}, "AccountSid": {fakeSID}}
	if code := signedStatus(t, base, public+"/twilio/status", form); code != http.StatusNoContent {
		t.Fatalf("status callback: %d, want 204", code)
	}
}
