package main

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"sort"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"verifier/sms/faketwilio"
)

var soakDuration = flag.Duration("soak", 0, "run the crash soak this long (default: a few rounds)")

const (
	soakWorkers     = 16    // concurrent full flows
	soakRounds      = 4     // kills in a plain go test
	soakCheckers    = 4     // connections checking at once after a restart
	soakBatch       = 12    // numbers checked per connection: at most 24 frames, under the burst of 30
	soakOldSample   = 100   // numbers checked earlier that are checked again
	soakCheckAllMax = 20000 // the last round checks every number if there are no more
	soakReadTimeout = 10 * time.Second
)

// soakNumber is the i-th fresh number of the soak, false when they have
// run out (13 million, for a very long -soak): valid US numbers in the
// exchanges 556 to 999 but N11 of areas 415, 628 and 650, so none is one
// another test uses.
func soakNumber(i int) (string, bool) {
	const exchanges = 1000 - 556 - 4 // 611, 711, 811 and 911 are not exchanges
	block := i / 10000
	area := block / exchanges
	if area >= 3 {
		return "", false
	}
	ex := 556 + block%exchanges
	for n11 := 611; n11 <= ex; n11 += 100 {
		ex++
	}
	return fmt.Sprintf("+1%d%03d%04d", [...]int{415, 628, 650}[area], ex, i%10000), true
}

// What a client was told about a number.
type soakState int

const (
	soakVerified soakState = iota // a client saw verified
	soakPending                   // a client saw code_generated and sent no verify
	soakInFlight                  // a verify was sent and its answer never seen
)

func (s soakState) String() string {
	return [...]string{"verified", "pending", "verify in flight"}[s]
}

type soakEntry struct {
	state   soakState
	code    string
	gen     int  // the process that acknowledged it
	checked bool // checked by a process started after gen
}

// soakTarget is the process workers talk to; nil while it is down.
type soakTarget struct {
	url string
	gen int
}

type soak struct {
	t      *testing.T
	fake   *faketwilio.Server
	target atomic.Pointer[soakTarget]
	stop   atomic.Bool
	next   atomic.Int64 // numbers handed out

	mu     sync.Mutex
	ledger map[string]*soakEntry

	flows, broken, failures                       atomic.Int64
	checkedVerified, checkedPending, checkedAfter atomic.Int64
}

func (s *soak) errorf(format string, args ...any) {
	if s.failures.Add(1) <= 20 {
		s.t.Errorf(format, args...)
	}
}

func (s *soak) record(phone string, e soakEntry) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.ledger[phone] = &e
}

// soakConn is a WebSocket client whose every failure is an error, not a
// t.Fatal, so that a worker survives the server's death.
type soakConn struct{ ws *websocket.Conn }

var soakDialer = websocket.Dialer{HandshakeTimeout: 5 * time.Second}

func soakDial(base string) (*soakConn, error) {
	ws, resp, err := soakDialer.Dial(wsURL(base), http.Header{"Origin": {base}})
	if resp != nil && resp.Body != nil {
		resp.Body.Close()
	}
	if err != nil {
		return nil, err
	}
	return &soakConn{ws: ws}, nil
}

func (c *soakConn) Close() { c.ws.Close() }

// call sends one request and returns the answer about phone, skipping
// frames published about other numbers.
func (c *soakConn) call(event, phone, code string) (frame, error) {
	data := map[string]any{"phone_number": phone}
	if code != "" {
		data["code"] = code
	}
	b, _ := json.Marshal(map[string]any{"event": event, "data": data})
	c.ws.SetWriteDeadline(time.Now().Add(soakReadTimeout))
	if err := c.ws.WriteMessage(websocket.TextMessage, b); err != nil {
		return frame{}, err
	}
	for range 10 {
		c.ws.SetReadDeadline(time.Now().Add(soakReadTimeout))
		var f frame
		if err := c.ws.ReadJSON(&f); err != nil {
			return frame{}, err
		}
		if p, ok := f.Data["phone_number"].(string); ok && p != phone {
			continue
		}
		return f, nil
	}
	return frame{}, errors.New("no answer among 10 frames")
}

// soakDescribe names a frame for a message: its event and reason.
func soakDescribe(f frame) string {
	if r := f.reason(); r != "" {
		return f.Event + " " + r
	}
	return f.Event
}

// worker runs full flows on fresh numbers until stopped.
func (s *soak) worker(rng *rand.Rand) {
	for !s.stop.Load() {
		tgt := s.target.Load()
		if tgt == nil {
			time.Sleep(5 * time.Millisecond)
			continue
		}
		if !s.flow(rng, tgt) {
			time.Sleep(time.Duration(5+rng.IntN(15)) * time.Millisecond)
		}
	}
}

// flow registers a fresh number and then verifies it or leaves the code
// pending. It reports false if the server could not be reached or
// vanished, which ends the flow.
func (s *soak) flow(rng *rand.Rand, tgt *soakTarget) bool {
	c, err := soakDial(tgt.url)
	if err != nil {
		return false
	}
	defer c.Close()
	// A new process may have taken the old one's port: a flow belongs to
	// the process it was meant for, or to none.
	if s.target.Load() != tgt {
		return false
	}
	phone, ok := soakNumber(int(s.next.Add(1)))
	if !ok {
		s.stop.Store(true) // no fresh numbers left: the load ends, the checks go on
		return false
	}
	f, err := c.call("register", phone, "")
	if err != nil {
		s.broken.Add(1) // no code acknowledged: nothing to hold the server to
		return false
	}
	if f.Event != "code_generated" {
		s.errorf("register %s (fresh number): got %s %v, want code_generated", phone, soakDescribe(f), f.Data)
		return true
	}
	code := s.fake.LastCode(phone) // the text reaches the fake before code_generated is sent
	if code == "" {
		s.errorf("register %s: code_generated but the fake Twilio got no code", phone)
		return true
	}
	if rng.IntN(100) < 40 {
		s.record(phone, soakEntry{state: soakPending, code: code, gen: tgt.gen})
		s.flows.Add(1)
		return true
	}
	if d := rng.IntN(20); d > 0 {
		time.Sleep(time.Duration(d) * time.Millisecond)
	}
	s.record(phone, soakEntry{state: soakInFlight, code: code, gen: tgt.gen})
	f, err = c.call("verify", phone, code)
	if err != nil {
		s.broken.Add(1) // stays in flight: either outcome is acceptable
		return false
	}
	if f.Event != "verified" {
		s.errorf("verify %s with the code texted to it: got %s %v, want verified", phone, soakDescribe(f), f.Data)
		return true
	}
	s.record(phone, soakEntry{state: soakVerified, gen: tgt.gen})
	s.flows.Add(1)
	return true
}

type soakItem struct {
	phone string
	e     soakEntry
}

// selectChecks picks what to check against process gen: everything
// acknowledged by earlier processes and not yet checked since, plus a
// sample of the rest (all of them if all is set).
func (s *soak) selectChecks(rng *rand.Rand, gen int, all bool) []soakItem {
	s.mu.Lock()
	defer s.mu.Unlock()
	var fresh, old []soakItem
	for phone, e := range s.ledger {
		if e.gen >= gen {
			continue
		}
		if e.checked {
			old = append(old, soakItem{phone, *e})
		} else {
			fresh = append(fresh, soakItem{phone, *e})
		}
	}
	sort.Slice(old, func(i, j int) bool { return old[i].phone < old[j].phone })
	rng.Shuffle(len(old), func(i, j int) { old[i], old[j] = old[j], old[i] })
	// Check them all at the end, unless a long run made that take minutes.
	if (!all || len(old) > soakCheckAllMax) && len(old) > soakOldSample {
		old = old[:soakOldSample]
	}
	items := append(fresh, old...)
	rng.Shuffle(len(items), func(i, j int) { items[i], items[j] = items[j], items[i] })
	return items
}

// check holds process gen to everything in items, over several
// connections of at most soakBatch numbers each.
func (s *soak) check(url string, gen int, items []soakItem) {
	batches := make(chan []soakItem)
	var wg sync.WaitGroup
	for range soakCheckers {
		wg.Go(func() {
			for batch := range batches {
				s.checkBatch(url, gen, batch)
			}
		})
	}
	for len(items) > 0 {
		n := min(soakBatch, len(items))
		batches <- items[:n]
		items = items[n:]
	}
	close(batches)
	wg.Wait()
}

func (s *soak) checkBatch(url string, gen int, batch []soakItem) {
	c, err := soakDial(url)
	if err != nil {
		s.errorf("check: dial process %d: %v", gen, err)
		return
	}
	defer c.Close()
	for _, it := range batch {
		verifiedNow, err := s.checkOne(c, gen, it)
		if err != nil {
			s.errorf("check %s (%s, acknowledged by process %d) against process %d: %v", it.phone, it.e.state, it.e.gen, gen, err)
			return
		}
		s.mu.Lock()
		if verifiedNow {
			// This check's client saw verified: hold the next process to it.
			s.ledger[it.phone] = &soakEntry{state: soakVerified, gen: gen}
		} else {
			s.ledger[it.phone].checked = true
		}
		s.mu.Unlock()
	}
}

// checkOne checks one number, reporting a wrong answer as a test error;
// verifiedNow says the check itself verified the number.
func (s *soak) checkOne(c *soakConn, gen int, it soakItem) (verifiedNow bool, err error) {
	lost := func(f frame, asked string) {
		s.errorf("%s: a client saw %s (process %d); after SIGKILL, process %d answered %s with %s %v",
			it.phone, it.e.state, it.e.gen, gen, asked, soakDescribe(f), f.Data)
	}
	switch it.e.state {
	case soakVerified:
		f, err := c.call("register", it.phone, "")
		if err != nil {
			return false, err
		}
		if f.Event != "update" || f.reason() != "already_verified" {
			lost(f, "register")
		}
		s.checkedVerified.Add(1)
		return false, nil
	case soakPending:
		f, err := c.call("verify", it.phone, it.e.code)
		if err != nil {
			return false, err
		}
		s.checkedPending.Add(1)
		if f.Event != "verified" {
			lost(f, "verify with code "+it.e.code)
			return false, nil
		}
		return true, nil
	default: // in flight: verified, or the code still works
		f, err := c.call("verify", it.phone, it.e.code)
		if err != nil {
			return false, err
		}
		s.checkedAfter.Add(1)
		if f.Event == "verified" {
			return true, nil
		}
		if f.Event != "update" || f.reason() != "not_requested" {
			lost(f, "verify with code "+it.e.code)
			return false, nil
		}
		g, err := c.call("register", it.phone, "")
		if err != nil {
			return false, err
		}
		if g.Event != "update" || g.reason() != "already_verified" {
			s.errorf("%s: a verify with code %s was in flight when process %d died; process %d answered verify with %s and register with %s %v (want the code to work, or already_verified)",
				it.phone, it.e.code, it.e.gen, gen, soakDescribe(f), soakDescribe(g), g.Data)
			return false, nil
		}
		s.mu.Lock()
		s.ledger[it.phone] = &soakEntry{state: soakVerified, gen: it.e.gen}
		s.mu.Unlock()
		return false, nil
	}
}

// TestCrashSoakKeepsAcknowledgedState runs full flows concurrently, kills
// the server with SIGKILL at random moments and restarts it on the same
// database; after every restart, each number a client saw verified must
// still be verified and each code a client was told about must still work.
// go test -run TestCrashSoak -soak=5m runs it longer.
func TestCrashSoakKeepsAcknowledgedState(t *testing.T) {
	if testing.Short() {
		t.Skip("kills and restarts the binary; skipped with -short")
	}
	seed := uint64(time.Now().UnixNano())
	t.Logf("seed %d", seed)
	rng := rand.New(rand.NewPCG(seed, 0))

	fake := faketwilio.New(fakeSID, fakeToken)
	twilio := httptest.NewServer(fake)
	defer twilio.Close()
	dbPath := filepath.Join(t.TempDir(), "v.db")
	args := noLimits // every flow texts a fresh number, many of one block

	s := &soak{t: t, fake: fake, ledger: map[string]*soakEntry{}}
	start := time.Now()
	gen := 1
	p := startProcess(t, dbPath, twilio.URL, args...)
	s.target.Store(&soakTarget{url: p.URL, gen: gen})

	var workers sync.WaitGroup
	for i := range soakWorkers {
		wrng := rand.New(rand.NewPCG(seed, uint64(i)+1))
		workers.Go(func() { s.worker(wrng) })
	}
	defer func() {
		s.stop.Store(true)
		s.target.Store(nil)
		workers.Wait()
	}()

	rounds := 0
	for {
		rounds++
		last := rounds >= soakRounds
		if *soakDuration > 0 {
			last = time.Since(start) >= *soakDuration
		}
		time.Sleep(time.Duration(300+rng.IntN(1200)) * time.Millisecond)

		// Workers start no flow while no process is up, and a flow
		// started earlier belongs to the process that dies here.
		s.target.Store(nil)
		p.cmd.Process.Signal(syscall.SIGKILL)
		p.cmd.Wait()

		gen++
		p = startProcess(t, dbPath, twilio.URL, args...)
		items := s.selectChecks(rng, gen, last)
		s.check(p.URL, gen, items)
		if s.failures.Load() > 0 || last {
			break
		}
		s.target.Store(&soakTarget{url: p.URL, gen: gen})
	}

	s.mu.Lock()
	var verified int
	for _, e := range s.ledger {
		if e.state == soakVerified {
			verified++
		}
	}
	numbers := len(s.ledger)
	s.mu.Unlock()
	t.Logf("%v: %d rounds, %d kills; %d flows completed, %d broken by kills; %d numbers acknowledged, %d verified; "+
		"checked %d verified numbers, %d pending codes, %d verifies in flight",
		time.Since(start).Round(time.Millisecond), rounds, gen-1, s.flows.Load(), s.broken.Load(), numbers, verified,
		s.checkedVerified.Load(), s.checkedPending.Load(), s.checkedAfter.Load())
	if n := s.failures.Load(); n > 20 {
		t.Errorf("%d failures in all; the first 20 are shown", n)
	}
}
