package main

import (
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"verifier/sms/faketwilio"
)

// TestWireTranscript pins the WebSocket protocol as the page sees it: a
// scripted session against whole servers (fake Twilio, console sender,
// a 1 s code TTL) records every frame every client receives, in order, one
// line each, and compares the lot with testdata/transcript.golden.
//
// Lines starting with "#" are the script's own notes (what was sent, with
// random codes shown as <code> or <wrong code>, and what was done to the
// fake Twilio); every other line is "client frame", the
// frame re-encoded with sorted keys and its exact JSON types. Values that
// differ from run to run or are meant to change are replaced by
// placeholders, type-checked first, so that a missing key or a changed type
// still shows:
//
//	message       -> "<message>" (texts for people, free to be reworded or translated)
//	token         -> "<token>"   (random)
//	verified_at   -> "<time>"    (wall clock; must still be RFC 3339)
//	dev_sms body  -> the code's digits become <code> (random), a link's id <link>
//
// The second counts (expires_in, resend_in, retry_after) are kept: the
// server rounds them up to whole seconds, and every answer that reports a
// remaining time comes well within a second of the send it counts from, so
// they are exact with these flags. The one frame pair whose order is not
// fixed (dev_sms is published while code_generated is the direct answer) is
// recorded sorted. At the end every client is read for another 300 ms:
// any frame arriving then is recorded too (none is expected).
//
//	go test -run TestWireTranscript -update .
//
// rewrites the golden file.
var update = flag.Bool("update", false, "rewrite testdata/transcript.golden from this run")

const transcriptGolden = "testdata/transcript.golden"

func TestWireTranscript(t *testing.T) {
	tr := &wireTranscript{t: t}

	// ---- A server texting through the fake Twilio, default rules except
	// two attempts per code, with a public URL so texts ask for delivery
	// reports.
	const public = "https://verify.example.com"
	ts := startServer(t, []string{"-public-url=" + public, "-max-attempts=2"}, nil)
	tr.note("server main: fake Twilio, -public-url=%s -max-attempts=2, default -code-ttl=10m -resend-after=30s, -countries default (US)", public)

	const (
		pTabs     = "+14155553001" // three tabs, verified
		pAttempts = "+14155553002" // too many attempts
		pRejected = "+14155553003" // Twilio refuses the number
		pDown     = "+14155553004" // Twilio answers 500
		pReports  = "+14155553005" // delivery reports
		pNever    = "+14155553006" // never requested
	)

	bad := tr.dial(ts, "main.bad")
	tr.sendRaw(bad, `not json`)
	tr.recv(bad)
	tr.sendRaw(bad, `{"event":"launch_missiles","data":{"phone_number":"+14155552671"}}`)
	tr.recv(bad)
	tr.sendRaw(bad, `{"event":"register","data":{}}`)
	tr.recv(bad)
	tr.sendRaw(bad, `{"event":"verify","data":{"phone_number":"+14155552671"}}`)
	tr.recv(bad)
	tr.send(bad, "register", map[string]any{"phone_number": "12345"})
	tr.recv(bad)
	tr.send(bad, "register", map[string]any{"phone_number": "+44 20 7183 8750"})
	tr.recv(bad)
	tr.verify(bad, pNever, "123456", "123456")
	tr.recv(bad)

	// Three tabs on one number: a wrong code, then the right one.
	tab1 := tr.dial(ts, "main.tab1")
	tab2 := tr.dial(ts, "main.tab2")
	tab3 := tr.dial(ts, "main.tab3")
	tr.send(tab1, "register", map[string]any{"phone_number": "(415) 555-3001"})
	tr.recv(tab1)
	tr.send(tab2, "register", map[string]any{"phone_number": pTabs})
	tr.recv(tab2)
	tr.send(tab3, "resume", map[string]any{"phone_number": pTabs})
	tr.recv(tab3)
	code := ts.codeFor(t, pTabs)
	tr.verify(tab1, pTabs, wrongCode(code), "<wrong code>")
	tr.recv(tab1)
	tr.verify(tab1, pTabs, code, "<code>")
	tr.recv(tab1)
	tr.recv(tab2)
	tr.recv(tab3)
	tr.send(tab1, "register", map[string]any{"phone_number": pTabs})
	tr.recv(tab1)
	tr.send(tab3, "resume", map[string]any{"phone_number": pTabs})
	tr.recv(tab3)
	tr.send(tab2, "register", map[string]any{"phone_number": pTabs, "reverify": true})
	tr.recv(tab2)

	// Too many attempts ends the code for every tab; the right code is void.
	typer := tr.dial(ts, "main.typer")
	watcher := tr.dial(ts, "main.watcher")
	tr.send(typer, "register", map[string]any{"phone_number": pAttempts})
	tr.recv(typer)
	tr.send(watcher, "resume", map[string]any{"phone_number": pAttempts})
	tr.recv(watcher)
	code = ts.codeFor(t, pAttempts)
	tr.verify(typer, pAttempts, wrongCode(code), "<wrong code>")
	tr.recv(typer)
	tr.verify(typer, pAttempts, wrongCode(code), "<wrong code>")
	tr.recv(typer)
	tr.recv(watcher)
	tr.verify(typer, pAttempts, code, "<code>")
	tr.recv(typer)
	tr.send(watcher, "resume", map[string]any{"phone_number": pAttempts})
	tr.recv(watcher)

	// Twilio refusing the number, then failing.
	fail := tr.dial(ts, "main.fail")
	tr.note("fake Twilio refuses every text: HTTP 400, error 21211")
	ts.Twilio.SetFailure(&faketwilio.Failure{HTTPStatus: 400, Code: 21211})
	tr.send(fail, "register", map[string]any{"phone_number": pRejected})
	tr.recv(fail)
	tr.note("fake Twilio fails every text: HTTP 500")
	ts.Twilio.SetFailure(&faketwilio.Failure{HTTPStatus: 500})
	tr.send(fail, "register", map[string]any{"phone_number": pDown})
	tr.recv(fail)
	tr.note("fake Twilio healed")
	ts.Twilio.SetFailure(nil)
	tr.verify(fail, pDown, "123456", "123456")
	tr.recv(fail)
	tr.send(fail, "resume", map[string]any{"phone_number": pRejected})
	tr.recv(fail)
	tr.send(fail, "resume", map[string]any{"phone_number": pNever})
	tr.recv(fail)

	// Delivery reports, signed as Twilio signs them.
	rep := tr.dial(ts, "main.reports")
	tr.send(rep, "register", map[string]any{"phone_number": pReports})
	tr.recv(rep)
	msgs := ts.Twilio.To(pReports)
	if len(msgs) != 1 || msgs[0].StatusCallback != public+"/twilio/status" {
		t.Fatalf("texts to %s: %+v", pReports, msgs)
	}
	for _, form := range []url.Values{
		{"MessageSid": {"SM1"}, "MessageStatus": {"sent"}, "To": {pReports}, "AccountSid": {fakeSID}},
		{"MessageSid": {"SM1"}, "MessageStatus": {"delivered"}, "To": {pReports}, "AccountSid": {fakeSID}},
		{"MessageSid": {"SM1"}, "MessageStatus": {"undelivered"}, "To": {pReports}, "ErrorCode": {"30003"}, "AccountSid": {fakeSID}},
	} {
		tr.postStatus(ts, msgs[0].StatusCallback, form)
		tr.recv(rep)
	}

	// ---- No Twilio credentials: the console sender and its dev inbox, and
	// one text per client address an hour.
	dev := startServer(t, []string{"-public-url=" + public, "-max-sms-per-ip=1"}, map[string]string{"TWILIO_ACCOUNT_SID": ""})
	tr.note("server dev: console sender (no TWILIO_ACCOUNT_SID), -public-url=%s -max-sms-per-ip=1", public)
	const pDev, pDev2 = "+14155553101", "+14155553102"
	inbox := tr.dial(dev, "dev.tab")
	tr.send(inbox, "register", map[string]any{"phone_number": pDev})
	got := tr.recvUnordered(inbox, 2) // the dev inbox's copy and the answer race
	code = ""
	for _, f := range got {
		if f["event"] == "dev_sms" {
			if d, ok := f["data"].(map[string]any); ok {
				body, _ := d["body"].(string)
				code = faketwilio.Code(body)
			}
		}
	}
	if code == "" {
		t.Fatalf("no dev_sms with a code among %v", got)
	}
	tr.verify(inbox, pDev, code, "<code>")
	tr.recv(inbox)
	tr.send(inbox, "register", map[string]any{"phone_number": pDev2})
	tr.recv(inbox)

	// ---- Codes that live one second: the expiry is pushed.
	short := startServer(t, []string{"-code-ttl=1s", "-resend-after=1s"}, nil)
	tr.note("server ttl: fake Twilio, -code-ttl=1s -resend-after=1s")
	const pTTL = "+14155553201"
	waiting := tr.dial(short, "ttl.tab")
	tr.send(waiting, "register", map[string]any{"phone_number": pTTL})
	tr.recv(waiting)
	code = short.codeFor(t, pTTL)
	tr.note("nothing sent: wait for the expiry to be pushed")
	tr.recv(waiting)
	tr.verify(waiting, pTTL, code, "<code>")
	tr.recv(waiting)

	tr.drain()
	tr.compare()
}

// wireTranscript records a scripted session, line by line.
type wireTranscript struct {
	t       *testing.T
	lines   []string
	clients []*transcriptClient
	codes   []string // codes seen in dev_sms bodies, masked everywhere
}

type transcriptClient struct {
	label string
	c     *client
}

func (tr *wireTranscript) note(format string, a ...any) {
	tr.lines = append(tr.lines, "# "+fmt.Sprintf(format, a...))
}

func (tr *wireTranscript) dial(ts *testServer, label string) *transcriptClient {
	tr.t.Helper()
	tc := &transcriptClient{label: label, c: dial(tr.t, ts.URL)}
	tr.clients = append(tr.clients, tc)
	tr.note("%s connects", label)
	return tc
}

func (tr *wireTranscript) send(tc *transcriptClient, event string, data map[string]any) {
	tr.t.Helper()
	tr.sendRaw(tc, tr.encode(map[string]any{"event": event, "data": data}))
}

func (tr *wireTranscript) sendRaw(tc *transcriptClient, raw string) {
	tr.t.Helper()
	tr.note("%s sends %s", tc.label, raw)
	tc.c.sendRaw(raw)
}

// verify sends a verify frame; the note shows the code as shown, since
// real codes are random.
func (tr *wireTranscript) verify(tc *transcriptClient, phone, code, shown string) {
	tr.t.Helper()
	tr.note("%s sends %s", tc.label, tr.encode(map[string]any{"event": "verify", "data": map[string]any{"phone_number": phone, "code": shown}}))
	tc.c.verify(phone, code)
}

// read returns the next frame as generic JSON, numbers kept as written.
func (tr *wireTranscript) read(tc *transcriptClient, wait time.Duration) (map[string]any, error) {
	tc.c.ws.SetReadDeadline(time.Now().Add(wait))
	_, raw, err := tc.c.ws.ReadMessage()
	if err != nil {
		return nil, err
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	var f map[string]any
	if err := dec.Decode(&f); err != nil {
		return map[string]any{"not_json": string(raw)}, nil
	}
	return f, nil
}

// recv reads and records the next frame tc receives.
func (tr *wireTranscript) recv(tc *transcriptClient) map[string]any {
	tr.t.Helper()
	f, err := tr.read(tc, 10*time.Second)
	if err != nil {
		tr.lines = append(tr.lines, tc.label+" READ ERROR")
		tr.t.Logf("transcript so far:\n%s", strings.Join(tr.lines, "\n"))
		tr.t.Fatalf("%s: read: %v", tc.label, err)
	}
	tr.lines = append(tr.lines, tc.label+" "+tr.render(f))
	return f
}

// recvUnordered reads n frames whose order is not fixed (a published
// frame racing the direct answer) and records them sorted.
func (tr *wireTranscript) recvUnordered(tc *transcriptClient, n int) []map[string]any {
	tr.t.Helper()
	tr.note("%s receives the next %d frames in either order (recorded sorted)", tc.label, n)
	var frames []map[string]any
	for range n {
		f, err := tr.read(tc, 10*time.Second)
		if err != nil {
			tr.t.Logf("transcript so far:\n%s", strings.Join(tr.lines, "\n"))
			tr.t.Fatalf("%s: read: %v", tc.label, err)
		}
		frames = append(frames, f)
	}
	for _, f := range frames { // learn the codes before rendering any frame
		tr.learnCode(f)
	}
	var lines []string
	for _, f := range frames {
		lines = append(lines, tc.label+" "+tr.render(f))
	}
	slices.Sort(lines)
	tr.lines = append(tr.lines, lines...)
	return frames
}

func (tr *wireTranscript) learnCode(f map[string]any) {
	d, _ := f["data"].(map[string]any)
	if body, ok := d["body"].(string); ok && f["event"] == "dev_sms" {
		if c := faketwilio.Code(body); c != "" {
			tr.codes = append(tr.codes, c)
		}
	}
}

// render masks what legitimately varies and encodes the frame with sorted
// keys (encoding/json sorts map keys).
func (tr *wireTranscript) render(f map[string]any) string {
	tr.learnCode(f)
	if d, ok := f["data"].(map[string]any); ok {
		masked := make(map[string]any, len(d))
		for k, v := range d {
			masked[k] = v
		}
		if s, ok := d["message"].(string); ok && s != "" {
			masked["message"] = "<message>"
		}
		if s, ok := d["token"].(string); ok && s != "" {
			masked["token"] = "<token>"
		}
		if s, ok := d["verified_at"].(string); ok {
			if _, err := time.Parse(time.RFC3339, s); err == nil {
				masked["verified_at"] = "<time>"
			}
		}
		if s, ok := d["body"].(string); ok {
			for _, c := range tr.codes {
				s = strings.ReplaceAll(s, c, "<code>")
			}
			masked["body"] = linkID.ReplaceAllString(s, "/v/<link>")
		}
		copied := make(map[string]any, len(f))
		for k, v := range f {
			copied[k] = v
		}
		copied["data"] = masked
		f = copied
	}
	return tr.encode(f)
}

// encode writes v as compact JSON with sorted keys, <, > and & as they are.
func (tr *wireTranscript) encode(v any) string {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		tr.t.Fatalf("encode %v: %v", v, err)
	}
	return strings.TrimSuffix(buf.String(), "\n")
}

// postStatus posts a delivery report signed with the fake account's token.
func (tr *wireTranscript) postStatus(ts *testServer, callback string, form url.Values) {
	tr.t.Helper()
	tr.note("Twilio posts a signed status callback: %s", form.Encode())
	tr.note("status callback answered HTTP %d", signedStatus(tr.t, ts.URL, callback, form))
}

// drain records, per client, any frame still arriving after the script:
// none is expected.
func (tr *wireTranscript) drain() {
	tr.note("frames still arriving after the script (none expected):")
	extra := make([][]map[string]any, len(tr.clients))
	var wg sync.WaitGroup
	for i, tc := range tr.clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				f, err := tr.read(tc, 300*time.Millisecond)
				if err != nil {
					return
				}
				extra[i] = append(extra[i], f)
			}
		}()
	}
	wg.Wait()
	for i, frames := range extra {
		for _, f := range frames {
			tr.lines = append(tr.lines, tr.clients[i].label+" "+tr.render(f))
		}
	}
}

func (tr *wireTranscript) compare() {
	t := tr.t
	got := strings.Join(tr.lines, "\n") + "\n"
	if *update {
		if err := os.MkdirAll(filepath.Dir(transcriptGolden), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(transcriptGolden, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
		t.Logf("wrote %s (%d lines)", transcriptGolden, len(tr.lines))
		return
	}
	want, err := os.ReadFile(transcriptGolden)
	if err != nil {
		t.Fatalf("%v (run go test -run TestWireTranscript -update . to create it)", err)
	}
	if string(want) == got {
		return
	}
	t.Errorf("the wire transcript differs from %s (- golden, + this run):\n%s\nwhole transcript of this run:\n%s",
		transcriptGolden, lineDiff(strings.Split(strings.TrimSuffix(string(want), "\n"), "\n"), tr.lines), got)
}

// lineDiff is a minimal LCS line diff, showing only changed lines with
// their line numbers in the golden file (-) and this run (+).
func lineDiff(a, b []string) string {
	n, m := len(a), len(b)
	lcs := make([][]int, n+1)
	for i := range lcs {
		lcs[i] = make([]int, m+1)
	}
	for i := n - 1; i >= 0; i-- {
		for j := m - 1; j >= 0; j-- {
			if a[i] == b[j] {
				lcs[i][j] = lcs[i+1][j+1] + 1
			} else {
				lcs[i][j] = max(lcs[i+1][j], lcs[i][j+1])
			}
		}
	}
	var out strings.Builder
	i, j := 0, 0
	for i < n || j < m {
		switch {
		case i < n && j < m && a[i] == b[j]:
			i, j = i+1, j+1
		case j < m && (i == n || lcs[i][j+1] > lcs[i+1][j]):
			fmt.Fprintf(&out, "+%4d %s\n", j+1, b[j])
			j++
		default:
			fmt.Fprintf(&out, "-%4d %s\n", i+1, a[i])
			i++
		}
	}
	return out.String()
}

// linkID is a tap-to-verify link's random id in a text.
var linkID = regexp.MustCompile(`/v/[A-Za-z0-9_-]{48}`)
