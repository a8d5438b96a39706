package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"github.com/redis/go-redis/v9"

	"verifier/sms/faketwilio"
)

// testRedis is the Redis the multi-server tests share (VERIFIER_TEST_REDIS,
// which .ci/run starts); without one they skip.
func testRedis(t *testing.T) string {
	t.Helper()
	addr := os.Getenv("VERIFIER_TEST_REDIS")
	if addr == "" {
		t.Skip("no Redis at VERIFIER_TEST_REDIS: skipping the multi-server test")
	}
	rdb := redis.NewClient(&redis.Options{Addr: addr})
	defer rdb.Close()
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	if err := rdb.Ping(ctx).Err(); err != nil {
		t.Skipf("no Redis at VERIFIER_TEST_REDIS=%s (%v): skipping the multi-server test", addr, err)
	}
	return addr
}

// servers are n server processes sharing one Redis (under a prefix of
// their own) and one fake Twilio.
type servers struct {
	t      *testing.T
	fake   *faketwilio.Server
	twilio string
	store  string
	prefix string
	nodes  []*proc
	args   []string
}

const clusterPublic = "https://verify.example.com"

func startCluster(t *testing.T, n int, redisAddr string, args ...string) *servers {
	t.Helper()
	fake := faketwilio.New(fakeSID, fakeToken)
	srv := httptest.NewServer(fake)
	t.Cleanup(srv.Close)
	b := make([]byte, 6)
	rand.Read(b)
	c := &servers{t: t, fake: fake, twilio: srv.URL, store: "redis://" + redisAddr + "/0",
		prefix: "test-" + hex.EncodeToString(b) + ":", args: args}
	t.Cleanup(func() { cleanPrefix(redisAddr, c.prefix) })
	for range n {
		c.nodes = append(c.nodes, c.start())
	}
	return c
}

// start runs one more server of the cluster.
func (c *servers) start() *proc {
	c.t.Helper()
	args := append([]string{"-store=" + c.store, "-store-prefix=" + c.prefix, "-public-url=" + clusterPublic}, c.args...)
	return startProcessEnv(c.t, filepath.Join(c.t.TempDir(), "unused.db"), c.twilio, nil, args...)
}

// cleanPrefix deletes the keys a test's servers made.
func cleanPrefix(addr, prefix string) {
	rdb := redis.NewClient(&redis.Options{Addr: addr})
	defer rdb.Close()
	ctx := context.Background()
	iter := rdb.Scan(ctx, 0, prefix+"*", 500).Iterator()
	for iter.Next(ctx) {
		rdb.Del(ctx, iter.Val())
	}
}

func TestAFlowBegunOnOneServerFinishesOnAnotherAfterAReconnect(t *testing.T) {
	cl := startCluster(t, 3, testRedis(t), noLimits...)
	a := dial(t, cl.nodes[0].URL)
	a.register(phone)
	a.expect("code_generated", "")
	code := cl.fake.LastCode(phone)
	a.ws.Close()
	b := dial(t, cl.nodes[1].URL) // the page reconnects, to another server
	b.send("resume", map[string]any{"phone_number": phone})
	b.expect("update", "code_pending")
	b.verify(phone, code)
	if f := b.expect("verified", ""); f.Data["token"] == nil {
		t.Fatalf("verified on B without a token: %v", f.Data)
	}
}

func TestTabsOnTwoServersBothSeeVerifiedAndAReportAtAThirdReachesThePage(t *testing.T) {
	cl := startCluster(t, 3, testRedis(t), noLimits...)
	tab1 := dial(t, cl.nodes[0].URL)
	tab1.register(phone)
	tab1.expect("code_generated", "")
	tab2 := dial(t, cl.nodes[1].URL)
	tab2.send("resume", map[string]any{"phone_number": phone})
	tab2.expect("update", "code_pending")

	postStatus(t, cl.nodes[2].URL, clusterPublic, phone, "delivered") // Twilio calls the third server
	tab1.expect("update", "sms_delivered")

	tab1.verify(phone, cl.fake.LastCode(phone))
	if f := tab1.expect("verified", ""); f.Data["token"] == nil {
		t.Fatal("the typing tab got no token")
	}
	if f := tab2.expect("verified", ""); f.Data["token"] != nil {
		t.Fatalf("the other tab, on another server, got a token: %v", f.Data)
	}
}

// crossFlow registers on one server and verifies on another.
func crossFlow(cl *servers, i int) error {
	phone := numberN(i)
	reg, ver := cl.nodes[i%len(cl.nodes)], cl.nodes[(i+1)%len(cl.nodes)]
	if err := exchange(reg.URL, phone, "register", nil, "code_generated"); err != nil {
		return err
	}
	return exchange(ver.URL, phone, "verify", map[string]any{"code": cl.fake.LastCode(phone)}, "verified")
}

// exchange opens a socket to base, sends one event for phone and wants event back.
func exchange(base, phone, event string, extra map[string]any, want string) error {
	ws, _, err := websocket.DefaultDialer.Dial(wsURL(base), nil)
	if err != nil {
		return err
	}
	defer ws.Close()
	data := map[string]any{"phone_number": phone}
	for k, v := range extra {
		data[k] = v
	}
	ws.SetReadDeadline(time.Now().Add(15 * time.Second))
	if err := ws.WriteJSON(map[string]any{"event": event, "data": data}); err != nil {
		return err
	}
	var f frame
	if err := ws.ReadJSON(&f); err != nil {
		return err
	}
	if f.Event != want {
		return fmt.Errorf("%s %s: got %s %v", phone, event, f.Event, f.Data)
	}
	return nil
}

func TestFiveHundredFlowsSpreadOverThreeServersSendOneTextEach(t *testing.T) {
	cl := startCluster(t, 3, testRedis(t), noLimits...)
	var wg sync.WaitGroup
	errs := make(chan error, 500)
	for i := range 500 {
		wg.Go(func() { errs <- crossFlow(cl, i) })
		if i%100 == 99 {
			wg.Wait()
		}
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	for i := range 500 {
		if n := len(cl.fake.To(numberN(i))); n != 1 {
			t.Fatalf("%s got %d texts, want 1", numberN(i), n)
		}
	}
}

// race sends n registers at once over the cluster's servers and counts
// the codes sent.
func race(cl *servers, n int, phoneOf func(i int) string) int {
	var wg sync.WaitGroup
	var sent atomic.Int32
	for i := range n {
		wg.Go(func() {
			if exchange(cl.nodes[i%len(cl.nodes)].URL, phoneOf(i), "register", map[string]any{"reverify": true}, "code_generated") == nil {
				sent.Add(1)
			}
		})
	}
	wg.Wait()
	return int(sent.Load())
}

func TestLimitsHoldAcrossServersUnderARace(t *testing.T) {
	addr := testRedis(t)
	open := []string{"-max-sms-per-minute=0", "-max-sms-per-hour=0", "-max-sms-per-prefix=0", "-max-sms-per-connection=0", "-max-lookups-per-ip=0"}
	perIP := startCluster(t, 3, addr, append(open, "-max-sms-per-ip=5", "-max-sms-per-number=0")...)
	if n := race(perIP, 30, numberN); n != 5 {
		t.Errorf("per address: %d codes sent, want 5", n)
	}
	perNumber := startCluster(t, 3, addr, append(open, "-max-sms-per-ip=0", "-max-sms-per-number=2", "-resend-after=0s")...)
	if n := race(perNumber, 30, func(int) string { return phone }); n != 2 {
		t.Errorf("per number: %d codes sent, want 2", n)
	}
	global := startCluster(t, 3, addr, "-max-sms-per-minute=7", "-max-sms-per-hour=0", "-max-sms-per-ip=0", "-max-sms-per-prefix=0",
		"-max-sms-per-connection=0", "-max-sms-per-number=0", "-max-lookups-per-ip=0")
	if n := race(global, 30, numberN); n != 7 {
		t.Errorf("the cost cap: %d codes sent, want 7", n)
	}
	restarted := global.start() // a new server counts the same minute
	if err := exchange(restarted.URL, numberN(99), "register", nil, "update"); err != nil {
		t.Errorf("a server started after the cap was reached: %v", err)
	}
}

func TestKillingOneServerMidLoadLosesNothingAcknowledged(t *testing.T) {
	cl := startCluster(t, 3, testRedis(t), noLimits...)
	var verified sync.Map
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for w := range 6 {
		wg.Go(func() {
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				n := 1000 + w*1000 + i
				phone := numberN(n % 8000)
				for tries := 0; tries < 3; tries++ { // a client whose server died tries another
					if crossFlowOn(cl, n+tries, phone) == nil {
						verified.Store(phone, true)
						break
					}
				}
			}
		})
	}
	time.Sleep(1500 * time.Millisecond)
	cl.nodes[0].cmd.Process.Signal(syscall.SIGKILL)
	cl.nodes[0].cmd.Wait()
	time.Sleep(1500 * time.Millisecond)
	close(stop)
	wg.Wait()
	count := 0
	verified.Range(func(k, _ any) bool {
		count++
		if err := exchange(cl.nodes[1+count%2].URL, k.(string), "register", nil, "update"); err != nil {
			t.Errorf("%s was verified before the kill and is not now: %v", k, err)
		}
		return true
	})
	if count < 20 {
		t.Fatalf("only %d flows finished: the load did not run", count)
	}
}

// crossFlowOn runs phone's flow on two of the live servers chosen by n.
func crossFlowOn(cl *servers, n int, phone string) error {
	live := cl.nodes[1:] // node 0 may be dead
	if n%4 == 0 {
		live = cl.nodes
	}
	reg, ver := live[n%len(live)], live[(n+1)%len(live)]
	if err := exchange(reg.URL, phone, "register", map[string]any{"reverify": true}, "code_generated"); err != nil {
		return err
	}
	return exchange(ver.URL, phone, "verify", map[string]any{"code": cl.fake.LastCode(phone)}, "verified")
}

// ownRedis starts a redis-server of the test's own, which it may stop,
// with an append-only file so its data outlives a restart.
type ownRedis struct {
	t    *testing.T
	port int
	dir  string
	cmd  *exec.Cmd
}

func startOwnRedis(t *testing.T) *ownRedis {
	t.Helper()
	if _, err := exec.LookPath("redis-server"); err != nil {
		t.Skip("redis-server not installed: skipping the Redis outage test")
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	ln.Close()
	r := &ownRedis{t: t, port: port, dir: t.TempDir()}
	r.start()
	t.Cleanup(r.stop)
	return r
}

func (r *ownRedis) addr() string { return "127.0.0.1:" + strconv.Itoa(r.port) }

func (r *ownRedis) start() {
	r.t.Helper()
	r.cmd = exec.Command("redis-server", "--port", strconv.Itoa(r.port), "--bind", "127.0.0.1", "--dir", r.dir,
		"--appendonly", "yes", "--appendfsync", "always", "--save", "")
	if err := r.cmd.Start(); err != nil {
		r.t.Fatal(err)
	}
	rdb := redis.NewClient(&redis.Options{Addr: r.addr()})
	defer rdb.Close()
	for range 100 {
		if rdb.Ping(context.Background()).Err() == nil {
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	r.t.Fatal("redis-server did not start")
}

func (r *ownRedis) stop() {
	if r.cmd != nil && r.cmd.Process != nil {
		r.cmd.Process.Signal(syscall.SIGTERM)
		r.cmd.Wait()
		r.cmd = nil
	}
}

func healthz(base string) int {
	resp, err := (&http.Client{Timeout: 3 * time.Second}).Get(base + "/healthz")
	if err != nil {
		return 0
	}
	resp.Body.Close()
	return resp.StatusCode
}

// load runs flows across the servers until stop is closed, and records
// the numbers each flow saw verified: acknowledged state.
func load(cl *servers, workers int, stop <-chan struct{}) (verified *sync.Map, failed *atomic.Int32, done *sync.WaitGroup) {
	verified, failed, done = &sync.Map{}, &atomic.Int32{}, &sync.WaitGroup{}
	for w := range workers {
		done.Go(func() {
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				n := 3000 + w*500 + i%500 // numbers come round again: reverify
				if crossFlowOn(cl, n, numberN(n)) == nil {
					verified.Store(numberN(n), true)
				} else {
					failed.Add(1)
				}
			}
		})
	}
	return verified, failed, done
}

func TestLosingRedisMidLoadFailsFastAndRecoversWithoutARestart(t *testing.T) {
	r := startOwnRedis(t)
	cl := startCluster(t, 2, r.addr(), noLimits...)
	stop := make(chan struct{})
	verified, failed, done := load(cl, 4, stop)
	time.Sleep(time.Second)
	r.stop()
	start := time.Now()
	err := exchange(cl.nodes[0].URL, numberN(2), "register", nil, "update")
	if err != nil || time.Since(start) > 5*time.Second {
		t.Fatalf("register with Redis down: %v after %v, want an update (send_failed) at once", err, time.Since(start))
	}
	if code := healthz(cl.nodes[1].URL); code != http.StatusServiceUnavailable {
		t.Fatalf("healthz with Redis down: %d, want 503", code)
	}
	time.Sleep(5 * time.Second)
	r.start()
	deadline := time.Now().Add(15 * time.Second)
	for healthz(cl.nodes[0].URL) != http.StatusOK || healthz(cl.nodes[1].URL) != http.StatusOK {
		if time.Now().After(deadline) {
			t.Fatal("the servers did not recover within 15 s of Redis coming back")
		}
		time.Sleep(200 * time.Millisecond)
	}
	before := failed.Load()
	time.Sleep(time.Second) // the load goes on after the gap
	close(stop)
	done.Wait()
	if failed.Load() == 0 {
		t.Fatal("no flow failed while Redis was away: the gap was not under load")
	}
	if after := failed.Load() - before; after > 4 {
		t.Errorf("%d flows failed after the recovery", after)
	}
	count := 0
	verified.Range(func(k, _ any) bool { // acknowledged before, during or after the gap
		count++
		if err := exchange(cl.nodes[count%2].URL, k.(string), "register", nil, "update"); err != nil {
			t.Errorf("%s was acknowledged verified and is not now: %v", k, err)
		}
		return true
	})
	if count < 10 {
		t.Fatalf("only %d flows finished", count)
	}
}

func TestAnExpiryIsPushedOnceToEachTabWhicheverServerSweeps(t *testing.T) {
	cl := startCluster(t, 3, testRedis(t), append([]string{"-code-ttl=1s"}, noLimits...)...)
	tabs := []*client{dial(t, cl.nodes[0].URL), dial(t, cl.nodes[1].URL), dial(t, cl.nodes[2].URL)}
	tabs[0].register(phone)
	tabs[0].expect("code_generated", "")
	for _, tab := range tabs[1:] {
		tab.send("resume", map[string]any{"phone_number": phone})
		tab.expect("update", "code_pending")
	}
	for i, tab := range tabs {
		tab.expect("reset", "expired")
		tab.ws.SetReadDeadline(time.Now().Add(1500 * time.Millisecond))
		if _, msg, err := tab.ws.ReadMessage(); err == nil {
			t.Errorf("tab %d heard more after the expiry: %s", i, msg)
		}
	}
}

func TestARedisDumpListsNoPhoneNumber(t *testing.T) {
	addr := testRedis(t)
	cl := startCluster(t, 2, addr, noLimits...)
	var phones []string
	for i := range 60 {
		if err := crossFlow(cl, i); err != nil {
			t.Fatal(err)
		}
		phones = append(phones, numberN(i))
	}
	pending := numberN(77)
	if err := exchange(cl.nodes[0].URL, pending, "register", nil, "code_generated"); err != nil {
		t.Fatal(err)
	}
	rdb := redis.NewClient(&redis.Options{Addr: addr})
	defer rdb.Close()
	ctx := context.Background()
	var dump []byte
	iter := rdb.Scan(ctx, 0, cl.prefix+"*", 500).Iterator()
	for iter.Next(ctx) {
		v, err := rdb.Dump(ctx, iter.Val()).Result()
		if err != nil {
			t.Fatal(err)
		}
		dump = append(append(dump, iter.Val()...), v...)
	}
	if len(dump) == 0 {
		t.Fatal("nothing in Redis under the cluster's prefix")
	}
	for _, p := range append(phones, pending) {
		for _, form := range numberForms(p) {
			if bytes.Contains(dump, form) {
				t.Fatalf("the Redis dump holds %s as %q", p, form)
			}
		}
	}
}
