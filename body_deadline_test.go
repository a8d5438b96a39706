package main

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"
)

// devServer has every POST route: without Twilio the demo shop is served.
func devServer(t *testing.T) *testServer {
	return startServer(t, nil, map[string]string{"TWILIO_ACCOUNT_SID": "", "VERIFIER_API_KEY": apiKey})
}

var postRoutes = []string{"/api/siteverify", "/twilio/status", "/demo/embed"}

func TestPostBodiesOver64KiBGet413(t *testing.T) {
	ts := devServer(t)
	body := url.Values{"secret": {apiKey}, "token": {strings.Repeat("A", 100<<10)}}.Encode()
	for _, path := range postRoutes {
		resp, err := http.Post(ts.URL+path, "application/x-www-form-urlencoded", strings.NewReader(body))
		if err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		var answer map[string]any
		err = json.NewDecoder(resp.Body).Decode(&answer)
		resp.Body.Close()
		if resp.StatusCode != http.StatusRequestEntityTooLarge || err != nil {
			t.Errorf("%s: %d %v (%v), want 413 with a JSON body", path, resp.StatusCode, answer, err)
			continue
		}
		// Siteverify answers in its own shape, the others with an error.
		if path == "/api/siteverify" {
			if answer["success"] != false || fmt.Sprint(answer["error-codes"]) != "[request-too-large]" {
				t.Errorf("%s: %v, want success false and request-too-large", path, answer)
			}
		} else if s, _ := answer["error"].(string); s == "" {
			t.Errorf("%s: %v, want an error", path, answer)
		}
	}
}

// A client that trickles a POST body is cut off: the server closes the
// connection long before the client would have finished sending.
func TestATrickledPostBodyIsCutOff(t *testing.T) {
	ts := devServer(t)
	addr := strings.TrimPrefix(ts.URL, "http://")
	var wg sync.WaitGroup
	for _, path := range postRoutes { // all at once, not t.Parallel: that waits on GOMAXPROCS
		wg.Go(func() {
			if err := trickle(addr, path); err != nil {
				t.Errorf("POST %s: %v", path, err)
			}
		})
	}
	wg.Wait()
}

// trickle sends a POST's headers announcing 1,000 bytes, then one byte a
// second, and reads until the server closes the connection or 15 s pass.
func trickle(addr, path string) error {
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		return err
	}
	defer conn.Close()
	fmt.Fprintf(conn, "POST %s HTTP/1.1\r\nHost: %s\r\nContent-Type: application/x-www-form-urlencoded\r\n"+
		"Content-Length: 1000\r\n\r\n", path, addr)
	stop := make(chan struct{})
	defer close(stop)
	go func() {
		tick := time.NewTicker(time.Second)
		defer tick.Stop()
		for {
			if _, err := conn.Write([]byte("a")); err != nil {
				return
			}
			select {
			case <-tick.C:
			case <-stop:
				return
			}
		}
	}()
	conn.SetReadDeadline(time.Now().Add(15 * time.Second))
	r := bufio.NewReader(conn)
	status, _ := r.ReadString('\n')
	_, err = io.Copy(io.Discard, r) // EOF, or a reset as the client's next byte meets a closed socket
	if ne := net.Error(nil); errors.As(err, &ne) && ne.Timeout() {
		return fmt.Errorf("the server still held the connection after 15 s of a trickled body (read %q)", status)
	}
	if !strings.HasPrefix(status, "HTTP/1.1 408") {
		return fmt.Errorf("status line %q, want 408 before the server closed the connection", status)
	}
	return nil
}
