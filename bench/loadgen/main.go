// Command loadgen simulates many people verifying their numbers at once,
// over real WebSockets, against a verifier it starts (or one already
// running), with its own fake Twilio on loopback. Every run is bounded.
//
//	go build -o /tmp/verifier . && go run ./bench/loadgen -spawn /tmp/verifier -mode closed -c 500 -d 10s
//	go run ./bench/loadgen -null -mode closed -c 500 -d 10s
package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gorilla/websocket"

	"verifier/sms/faketwilio"
)

const (
	fakeSID   = "AC00000000000000000000000000000001"
	fakeToken = "loadgentoken1"
)

type options struct {
	spawn, server string
	null          bool
	mode          string
	people        int
	rate          float64
	duration      time.Duration
	numbers       string
	pool          int
	wrong         float64
	idle          int
	sources       int
	pid           int
	jsonOut       bool
	serverArgs    string
}

func main() {
	var o options
	fs := flag.NewFlagSet("loadgen", flag.ExitOnError)
	fs.StringVar(&o.spawn, "spawn", "", "start this verifier binary (temp database, limits off, Twilio pointed at loadgen's fake)")
	fs.StringVar(&o.server, "server", "", "use a running server at this URL (its TWILIO_API_URL must be -fake's address)")
	fs.BoolVar(&o.null, "null", false, "start the null server (canned answers, one fake SMS per register) instead")
	fs.StringVar(&o.mode, "mode", "closed", "closed (C people back to back), open (R flows/s) or none (only -idle)")
	fs.IntVar(&o.people, "c", 500, "people at once (closed)")
	fs.Float64Var(&o.rate, "rate", 1000, "flows started per second (open)")
	fs.DurationVar(&o.duration, "d", 10*time.Second, "how long to run (at most 10m)")
	fs.StringVar(&o.numbers, "numbers", "distinct", "distinct (a new number per flow) or repeated (a pool of -pool numbers, reverify)")
	fs.IntVar(&o.pool, "pool", 1000, "numbers in the pool (-numbers repeated)")
	fs.Float64Var(&o.wrong, "wrong", 0, "share of flows that type a wrong code first (0 to 1)")
	fs.IntVar(&o.idle, "idle", 0, "idle sockets to open and hold during the run")
	fs.IntVar(&o.sources, "sources", 32, "127.0.0.x source addresses to spread sockets over")
	fs.IntVar(&o.pid, "pid", 0, "server process for CPU and memory figures (-server only; -spawn and -null know it)")
	fs.BoolVar(&o.jsonOut, "json", false, "print the report as JSON")
	fs.StringVar(&o.serverArgs, "server-args", "", "extra flags for the spawned server, space-separated")
	serveNullAt := fs.String("serve-null", "", "internal: run as the null server texting this fake Twilio URL")
	fs.Parse(os.Args[1:])

	if *serveNullAt != "" {
		if err := serveNull(*serveNullAt); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		return
	}
	if o.duration > 10*time.Minute {
		o.duration = 10 * time.Minute
	}
	rep, err := runLoad(o)
	if err != nil {
		fmt.Fprintln(os.Stderr, "loadgen:", err)
		os.Exit(1)
	}
	if o.jsonOut {
		json.NewEncoder(os.Stdout).Encode(rep)
	} else {
		rep.print(os.Stdout)
	}
}

// report is what a run measured.
type report struct {
	Target         string         `json:"target"`
	Mode           string         `json:"mode"`
	People         int            `json:"people,omitempty"`
	Rate           float64        `json:"rate,omitempty"`
	Seconds        float64        `json:"seconds"`
	Flows          int64          `json:"flows"`
	FlowsPerSec    float64        `json:"flows_per_sec"`
	Register       summary        `json:"register_to_code_generated_ms"`
	Verify         summary        `json:"verify_to_verified_ms"`
	Errors         map[string]int `json:"errors"`
	CPUmsPerFlow   float64        `json:"server_cpu_ms_per_flow"`
	RSSBytes       int64          `json:"server_rss_bytes"`
	IdleSockets    int            `json:"idle_sockets,omitempty"`
	IdleRSSPerConn float64        `json:"idle_rss_bytes_per_socket,omitempty"`
}

func (r report) print(w io.Writer) {
	fmt.Fprintf(w, "target %s, mode %s", r.Target, r.Mode)
	if r.Mode == "closed" {
		fmt.Fprintf(w, ", %d people", r.People)
	}
	if r.Mode == "open" {
		fmt.Fprintf(w, ", %.0f flows/s offered", r.Rate)
	}
	fmt.Fprintf(w, ", %.1f s\n", r.Seconds)
	if r.IdleSockets > 0 {
		fmt.Fprintf(w, "idle sockets held: %d, server RSS per socket %.0f B\n", r.IdleSockets, r.IdleRSSPerConn)
	}
	if r.Flows > 0 {
		fmt.Fprintf(w, "flows: %d, %.0f flows/s\n", r.Flows, r.FlowsPerSec)
		fmt.Fprintf(w, "register -> code_generated ms: p50 %.2f p90 %.2f p99 %.2f max %.2f\n", r.Register.P50, r.Register.P90, r.Register.P99, r.Register.Max)
		fmt.Fprintf(w, "verify -> verified ms:         p50 %.2f p90 %.2f p99 %.2f max %.2f\n", r.Verify.P50, r.Verify.P90, r.Verify.P99, r.Verify.Max)
		fmt.Fprintf(w, "server CPU per flow: %.3f ms\n", r.CPUmsPerFlow)
	}
	fmt.Fprintf(w, "server RSS: %.1f MiB\n", float64(r.RSSBytes)/(1<<20))
	if len(r.Errors) == 0 {
		fmt.Fprintln(w, "errors: none")
	} else {
		fmt.Fprintf(w, "errors: %v\n", r.Errors)
	}
}

// target is the server under load.
type target struct {
	url  string
	pid  int
	stop func()
}

func runLoad(o options) (report, error) {
	fake := faketwilio.New(fakeSID, fakeToken)
	fake.NoHistory = true
	twilio := httptest.NewServer(fake)
	defer twilio.Close()

	tgt, err := startTarget(o, twilio.URL)
	if err != nil {
		return report{}, err
	}
	defer tgt.stop()
	rep := report{Target: tgt.url, Mode: o.mode, Errors: map[string]int{}}
	if o.null {
		rep.Target = "null server"
	}
	l := &loader{o: o, url: tgt.url, fake: fake, errors: map[string]int{}}
	l.dialers = make([]*websocket.Dialer, max(1, o.sources))
	for i := range l.dialers {
		local := &net.TCPAddr{IP: net.IPv4(127, 0, 0, byte(1+i%250))}
		nd := &net.Dialer{LocalAddr: local, Timeout: 10 * time.Second}
		l.dialers[i] = &websocket.Dialer{NetDialContext: nd.DialContext, HandshakeTimeout: 10 * time.Second,
			ReadBufferSize: 1024, WriteBufferSize: 1024}
	}

	if o.idle > 0 {
		before, _ := readProc(tgt.pid)
		conns, err := l.openIdle(o.idle)
		defer func() {
			for _, c := range conns {
				c.Close()
			}
		}()
		if err != nil {
			return rep, err
		}
		time.Sleep(2 * time.Second) // let the server settle its per-socket allocations
		after, _ := readProc(tgt.pid)
		rep.IdleSockets = len(conns)
		rep.IdleRSSPerConn = float64(after.RSSBytes-before.RSSBytes) / float64(len(conns))
	}

	start, _ := readProc(tgt.pid)
	began := time.Now()
	switch o.mode {
	case "closed":
		rep.People = o.people
		l.closed(o.people, o.duration)
	case "open":
		rep.Rate = o.rate
		l.open(o.rate, o.duration)
	case "none":
		time.Sleep(o.duration)
	default:
		return rep, fmt.Errorf("unknown mode %q", o.mode)
	}
	elapsed := time.Since(began)
	end, _ := readProc(tgt.pid)

	rep.Seconds = elapsed.Seconds()
	rep.Flows = l.flows.Load()
	rep.FlowsPerSec = float64(rep.Flows) / elapsed.Seconds()
	rep.Register = l.register.summary()
	rep.Verify = l.verify.summary()
	rep.Errors = l.errors
	if rep.Flows > 0 {
		rep.CPUmsPerFlow = (end.CPUSeconds - start.CPUSeconds) * 1000 / float64(rep.Flows)
	}
	rep.RSSBytes = end.RSSBytes
	return rep, nil
}

// startTarget spawns the verifier or the null server, or names a running one.
func startTarget(o options, twilioURL string) (*target, error) {
	if o.server != "" {
		return &target{url: strings.TrimRight(o.server, "/"), pid: o.pid, stop: func() {}}, nil
	}
	var cmd *exec.Cmd
	switch {
	case o.null:
		self, err := os.Executable()
		if err != nil {
			return nil, err
		}
		cmd = exec.Command(self, "-serve-null", twilioURL)
	case o.spawn != "":
		dir, err := os.MkdirTemp("", "loadgen")
		if err != nil {
			return nil, err
		}
		args := []string{"-addr=127.0.0.1:0", "-db=" + filepath.Join(dir, "verifier.db"),
			"-max-sms-per-minute=0", "-max-sms-per-hour=0", "-max-sms-per-number=0",
			"-max-sms-per-ip=0", "-max-sms-per-connection=0", "-max-sms-per-prefix=0",
			"-max-connections=0", "-max-connections-per-ip=0"}
		args = append(args, strings.Fields(o.serverArgs)...)
		cmd = exec.Command(o.spawn, args...)
		cmd.Env = append(os.Environ(), "TWILIO_ACCOUNT_SID="+fakeSID, "TWILIO_AUTH_TOKEN="+fakeToken,
			"TWILIO_FROM_NUMBER=+15005550006", "TWILIO_API_URL="+twilioURL)
		defer func() { _ = dir }()
	default:
		return nil, errors.New("name a target: -spawn BINARY, -null or -server URL")
	}
	cmd.Stderr = io.Discard
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	stop := func() { cmd.Process.Kill(); cmd.Wait() }
	lines := bufio.NewScanner(out)
	for lines.Scan() {
		if addr, ok := strings.CutPrefix(lines.Text(), "verifier listening on "); ok {
			go io.Copy(io.Discard, out)
			return &target{url: addr, pid: cmd.Process.Pid, stop: stop}, nil
		}
	}
	stop()
	return nil, errors.New("the server exited before it listened")
}

// loader drives flows and keeps their figures.
type loader struct {
	o       options
	url     string
	fake    *faketwilio.Server
	dialers []*websocket.Dialer
	next    atomic.Int64 // numbers handed out
	flows   atomic.Int64 // flows completed without error

	mu       sync.Mutex
	register latencies
	verify   latencies
	errors   map[string]int
}

func (l *loader) dialer() *websocket.Dialer {
	return l.dialers[int(l.next.Load())%len(l.dialers)]
}

func (l *loader) phone(n int64) string {
	if l.o.numbers == "repeated" {
		n %= int64(l.o.pool)
	}
	// +1 415 2xx xxxx: valid US numbers, ten million of them.
	return fmt.Sprintf("+1415%07d", 2000000+n%8000000)
}

func (l *loader) fail(reason string) {
	l.mu.Lock()
	l.errors[reason]++
	l.mu.Unlock()
}

func wsURL(base string) string { return "ws" + strings.TrimPrefix(base, "http") + "/ws" }

type frame struct {
	Event string `json:"event"`
	Data  struct {
		Reason string `json:"reason"`
	} `json:"data"`
}

// flow is one person: new socket, register, wait for the code, (a wrong
// code,) verify, close. due is when it should have started.
func (l *loader) flow(due time.Time) {
	n := l.next.Add(1)
	phone := l.phone(n)
	ws, _, err := l.dialers[int(n)%len(l.dialers)].Dial(wsURL(l.url), nil)
	if err != nil {
		l.fail("dial")
		return
	}
	defer ws.Close()
	ws.SetReadDeadline(time.Now().Add(30 * time.Second))
	send := func(event string, data map[string]any, want string) (time.Duration, bool) {
		sent := time.Now()
		b, _ := json.Marshal(map[string]any{"event": event, "data": data})
		if err := ws.WriteMessage(websocket.TextMessage, b); err != nil {
			l.fail("write")
			return 0, false
		}
		for {
			var f frame
			if err := ws.ReadJSON(&f); err != nil {
				l.fail("read")
				return 0, false
			}
			if f.Event == "dev_sms" {
				continue
			}
			if f.Event != want {
				l.fail(f.Event + ":" + f.Data.Reason)
				return 0, false
			}
			return time.Since(sent), true
		}
	}
	text := l.fake.Next(phone)
	regData := map[string]any{"phone_number": phone, "reverify": true}
	if _, ok := send("register", regData, "code_generated"); !ok {
		return
	}
	regLatency := time.Since(due)
	var code string
	select {
	case m := <-text:
		code = faketwilio.Code(m.Body)
	case <-time.After(10 * time.Second):
		l.fail("no_sms")
		return
	}
	if l.o.wrong > 0 && float64(n%1000) < l.o.wrong*1000 {
		wrong := fmt.Sprintf("%06d", (atoi(code)+1)%1000000)
		if _, ok := send("verify", map[string]any{"phone_number": phone, "code": wrong}, "update"); !ok {
			return
		}
	}
	verLatency, ok := send("verify", map[string]any{"phone_number": phone, "code": code}, "verified")
	if !ok {
		return
	}
	l.flows.Add(1)
	l.mu.Lock()
	l.register = append(l.register, regLatency)
	l.verify = append(l.verify, verLatency)
	l.mu.Unlock()
}

func atoi(s string) int {
	n := 0
	for _, c := range s {
		n = n*10 + int(c-'0')
	}
	return n
}

// closed runs people back to back: each starts the next flow when one ends.
func (l *loader) closed(people int, d time.Duration) {
	deadline := time.Now().Add(d)
	var wg sync.WaitGroup
	for range people {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for time.Now().Before(deadline) {
				l.flow(time.Now())
			}
		}()
	}
	wg.Wait()
}

// open starts flows at a fixed rate whatever happens; latency counts from
// when each flow was due, so a stall shows.
func (l *loader) open(rate float64, d time.Duration) {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	var wg sync.WaitGroup
	start := time.Now()
	interval := time.Duration(float64(time.Second) / rate)
	for i := 0; ; i++ {
		due := start.Add(time.Duration(i) * interval)
		if wait := time.Until(due); wait > 0 {
			select {
			case <-time.After(wait):
			case <-ctx.Done():
			}
		}
		if ctx.Err() != nil {
			break
		}
		wg.Add(1)
		go func() { defer wg.Done(); l.flow(due) }()
	}
	wg.Wait()
}

// openIdle opens n sockets and leaves them idle; it answers pings so the
// server keeps them.
func (l *loader) openIdle(n int) ([]*websocket.Conn, error) {
	conns := make([]*websocket.Conn, 0, n)
	for i := range n {
		ws, _, err := l.dialers[i%len(l.dialers)].Dial(wsURL(l.url), nil)
		if err != nil {
			return conns, fmt.Errorf("idle socket %d: %w", i, err)
		}
		go func() {
			for {
				if _, _, err := ws.NextReader(); err != nil {
					return
				}
			}
		}()
		conns = append(conns, ws)
	}
	return conns, nil
}
