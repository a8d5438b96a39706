package main

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/gorilla/websocket"
)

// serveNull is the null server: the same protocol with canned answers, one
// fake SMS call per register, no storage and no rules. Its flows/s is the
// most this machine can do with this protocol and this load generator.
func serveNull(twilioURL string) error {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	sms := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{MaxIdleConns: 256, MaxIdleConnsPerHost: 256}}
	smsURL := twilioURL + "/2010-04-01/Accounts/" + fakeSID + "/Messages.json"
	upgrader := websocket.Upgrader{ReadBufferSize: 1024, WriteBufferSize: 1024}
	fmt.Fprintf(os.Stdout, "verifier listening on http://%s\n", ln.Addr())
	return http.Serve(ln, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ws, err := upgrader.Upgrade(w, r, nil)
		if err != nil {
			return
		}
		defer ws.Close()
		for {
			var in struct {
				Event string `json:"event"`
				Data  struct {
					Phone string `json:"phone_number"`
				} `json:"data"`
			}
			if err := ws.ReadJSON(&in); err != nil {
				return
			}
			var out map[string]any
			switch in.Event {
			case "register":
				code := fmt.Sprintf("%06d", rand.IntN(1000000))
				form := url.Values{"To": {in.Data.Phone}, "From": {"+15005550006"}, "Body": {"Your verification code is: " + code}}
				req, _ := http.NewRequest(http.MethodPost, smsURL, strings.NewReader(form.Encode()))
				req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
				req.SetBasicAuth(fakeSID, fakeToken)
				if resp, err := sms.Do(req); err == nil {
					resp.Body.Close()
				}
				out = map[string]any{"event": "code_generated", "data": map[string]any{
					"phone_number": in.Data.Phone, "expires_in": 600, "resend_in": 30, "code_length": 6}}
			case "verify":
				out = map[string]any{"event": "verified", "data": map[string]any{
					"phone_number": in.Data.Phone, "verified_at": time.Now().UTC().Format(time.RFC3339), "token": "null"}}
			default:
				out = map[string]any{"event": "update", "data": map[string]any{"reason": "bad_request"}}
			}
			b, _ := json.Marshal(out)
			if ws.WriteMessage(websocket.TextMessage, b) != nil {
				return
			}
		}
	}))
}
