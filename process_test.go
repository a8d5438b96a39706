package main

import (
	"errors"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"verifier/sms/faketwilio"
)

var (
	buildOnce sync.Once
	binPath   string
	buildErr  error
)

// buildBinary compiles the server once per test run.
func buildBinary(t *testing.T) string {
	t.Helper()
	if testing.Short() {
		t.Skip("builds and runs the binary; skipped with -short")
	}
	buildOnce.Do(func() {
		dir, err := os.MkdirTemp("", "verifier-bin")
		if err != nil {
			buildErr = err
			return
		}
		binPath = filepath.Join(dir, "verifier")
		out, err := exec.Command("go", "build", "-o", binPath, ".").CombinedOutput()
		if err != nil {
			buildErr = errors.New(string(out))
		}
	})
	if buildErr != nil {
		t.Fatalf("go build: %v", buildErr)
	}
	return binPath
}

// proc is the server binary running as a child process.
type proc struct {
	cmd *exec.Cmd
	URL string
	out *lineBuffer
}

func startProcess(t *testing.T, dbPath, twilioURL string, args ...string) *proc {
	t.Helper()
	return startProcessEnv(t, dbPath, twilioURL, nil, args...)
}

// startProcessEnv starts the binary with env (NAME=value) added to the
// fake Twilio's.
func startProcessEnv(t *testing.T, dbPath, twilioURL string, env []string, args ...string) *proc {
	t.Helper()
	cmd := exec.Command(buildBinary(t), append([]string{"-addr=127.0.0.1:0", "-db=" + dbPath}, args...)...)
	cmd.Env = append(os.Environ(),
		"TWILIO_ACCOUNT_SID="+fakeSID, "TWILIO_AUTH_TOKEN="+fakeToken,
		"TWILIO_FROM_NUMBER=+15005550006", "TWILIO_API_URL="+twilioURL)
	cmd.Env = append(cmd.Env, env...)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	p := &proc{cmd: cmd, out: newLineBuffer()}
	go p.out.consume(stdout)
	p.URL = strings.TrimPrefix(p.out.waitFor(t, "verifier listening on "), "verifier listening on ")
	waitHealthy(t, p.URL)
	return p
}

func TestAcknowledgedStateSurvivesSIGKILL(t *testing.T) {
	fake := faketwilio.New(fakeSID, fakeToken)
	twilio := httptest.NewServer(fake)
	defer twilio.Close()
	dbPath := filepath.Join(t.TempDir(), "v.db")
	verified, pending := numberN(1), numberN(2)

	p := startProcess(t, dbPath, twilio.URL)
	c := dial(t, p.URL)
	c.register(verified)
	c.expect("code_generated", "")
	c.verify(verified, fake.LastCode(verified))
	c.expect("verified", "")
	c.register(pending)
	c.expect("code_generated", "")
	p.cmd.Process.Signal(syscall.SIGKILL)
	p.cmd.Wait()

	p = startProcess(t, dbPath, twilio.URL)
	c = dial(t, p.URL)
	c.register(verified)
	c.expect("update", "already_verified")
	c.verify(pending, fake.LastCode(pending))
	c.expect("verified", "")
	if n := len(fake.To(pending)); n != 1 {
		t.Fatalf("%d texts to %s, want 1", n, pending)
	}
}

func TestSIGTERMClosesSocketsWith1001AndExitsZero(t *testing.T) {
	fake := faketwilio.New(fakeSID, fakeToken)
	twilio := httptest.NewServer(fake)
	defer twilio.Close()
	p := startProcess(t, filepath.Join(t.TempDir(), "v.db"), twilio.URL)
	clients := []*client{dial(t, p.URL), dial(t, p.URL)}
	clients[0].register(phone)
	clients[0].expect("code_generated", "")

	start := time.Now()
	p.cmd.Process.Signal(syscall.SIGTERM)
	for _, c := range clients {
		c.ws.SetReadDeadline(time.Now().Add(10 * time.Second))
		_, _, err := c.ws.ReadMessage()
		var ce *websocket.CloseError
		if !errors.As(err, &ce) || ce.Code != websocket.CloseGoingAway {
			t.Errorf("client saw %v, want close 1001", err)
		}
	}
	exited := make(chan error, 1)
	go func() { exited <- p.cmd.Wait() }()
	select {
	case err := <-exited:
		if err != nil {
			t.Fatalf("exit: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("still running 10 s after SIGTERM")
	}
	t.Logf("stopped in %v", time.Since(start))
}
