package main

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"verifier/sms/faketwilio"
	"verifier/stats"
)

// startAdminServer runs a server with the admin listener, and returns its
// address.
func startAdminServer(t *testing.T, args []string, env map[string]string) (*testServer, string) {
	t.Helper()
	ts := startServer(t, append([]string{"-admin-addr=127.0.0.1:0"}, args...), env)
	return ts, strings.TrimPrefix(ts.stdout.waitFor(t, "verifier side listener on "), "verifier side listener on http://")
}

func adminStats(t *testing.T, admin, key string) (stats.Snapshot, int) {
	t.Helper()
	req, _ := http.NewRequest("GET", "http://"+admin+"/admin/stats", nil)
	if key != "" {
		req.Header.Set("Authorization", "Bearer "+key)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var s stats.Snapshot
	json.NewDecoder(resp.Body).Decode(&s)
	return s, resp.StatusCode
}

// scriptedRun is what the admin tests count: three verified flows and one
// text Twilio refuses (21614, a US number).
func scriptedRun(t *testing.T, ts *testServer) {
	t.Helper()
	for i := range 3 {
		if err := flow(ts, numberN(i)); err != nil {
			t.Fatal(err)
		}
	}
	ts.Twilio.SetFailure(&faketwilio.Failure{HTTPStatus: 400, Code: 21614, To: numberN(9)})
	c := dial(t, ts.URL)
	c.register(numberN(9))
	c.expect("update", "invalid_phone")
}

func TestTheAdminStatsCountAScriptedRunAndPushLive(t *testing.T) {
	ts, admin := startAdminServer(t, noLimits, nil)
	ws, _, err := websocket.DefaultDialer.Dial("ws://"+admin+"/admin/ws", http.Header{"Origin": {"http://" + admin}})
	if err != nil {
		t.Fatal(err)
	}
	defer ws.Close()
	var first stats.Snapshot
	ws.SetReadDeadline(time.Now().Add(5 * time.Second))
	if err := ws.ReadJSON(&first); err != nil || first.Sent != 0 {
		t.Fatalf("first push %+v, %v", first, err)
	}
	scriptedRun(t, ts)
	for { // the socket pushes until it has caught up
		var s stats.Snapshot
		if err := ws.ReadJSON(&s); err != nil {
			t.Fatalf("push: %v", err)
		}
		if s.Sent == 3 && s.Verified == 3 && s.Failed == 1 {
			if len(s.Failures) != 1 || s.Failures[0].Code != "21614" || s.Failures[0].Country != "US" || s.Conversion != 1 {
				t.Fatalf("failures %+v conversion %v", s.Failures, s.Conversion)
			}
			break
		}
	}
	if _, _, err := websocket.DefaultDialer.Dial("ws://"+admin+"/admin/ws", http.Header{"Origin": {"https://evil.example"}}); err == nil {
		t.Fatal("the admin socket opened for another origin")
	}
}

func TestTheAdminListenerAsksForItsKeyAndListsLimitedClients(t *testing.T) {
	const key = "0123456789abcdef-admin"
	ts, admin := startAdminServer(t, []string{"-max-sms-per-ip=1"}, map[string]string{"VERIFIER_ADMIN_KEY": key})
	if _, status := adminStats(t, admin, ""); status != http.StatusUnauthorized {
		t.Fatalf("no key: %d, want 401", status)
	}
	if _, status := adminStats(t, admin, "wrong"); status != http.StatusUnauthorized {
		t.Fatalf("a wrong key: %d, want 401", status)
	}
	c := dial(t, ts.URL)
	c.register(numberN(1))
	c.expect("code_generated", "")
	s, status := adminStats(t, admin, key)
	if status != http.StatusOK || len(s.Limited) != 1 || s.Limited[0].Limit != "client" || s.Limited[0].Key != "127.0.0.1" {
		t.Fatalf("stats %d %+v: want the client address limited", status, s.Limited)
	}
	if s.Spend.Minute.Used != 1 || s.Spend.Minute.Cap != 60 {
		t.Fatalf("spend %+v", s.Spend)
	}
}

func TestStoppingTheServerClosesTheAdminSocket(t *testing.T) {
	ts, admin := startAdminServer(t, nil, nil)
	ws, _, err := websocket.DefaultDialer.Dial("ws://"+admin+"/admin/ws", http.Header{"Origin": {"http://" + admin}})
	if err != nil {
		t.Fatal(err)
	}
	defer ws.Close()
	var s stats.Snapshot
	ws.ReadJSON(&s)
	ts.stop()
	ws.SetReadDeadline(time.Now().Add(5 * time.Second))
	for {
		if _, _, err := ws.ReadMessage(); err != nil {
			if websocket.IsCloseError(err, websocket.CloseGoingAway) {
				return
			}
			t.Fatalf("the admin socket ended with %v, want close 1001", err)
		}
	}
}
