// Package faketwilio is a stand-in for Twilio's Messages and Calls APIs on loopback,
// for tests and the load generator: the real twilio-go client talks to it,
// and callers read the codes from the messages it received.
package faketwilio

import (
	"crypto/hmac"
	"crypto/sha1"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	neturl "net/url"
	"regexp"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Message is one message (or, with Twiml set, one call) the fake accepted.
type Message struct {
	To, From, Body, MessagingServiceSID, StatusCallback string
	Twiml                                               string // a call's TwiML; Body is then what it says
	ContentSID, ContentVariables                        string // a WhatsApp template and its variables (JSON)
	Verify                                              string // the Verify channel when Twilio Verify sent it
}

// Failure is what the fake answers instead of accepting a message.
type Failure struct {
	HTTPStatus int
	Code       int // Twilio error code; 0 sends a non-JSON body
	Delay      time.Duration
	To         string // only messages to this number fail; "" for all
}

// Server is the fake. Set AccountSID and AuthToken before serving.
type Server struct {
	AccountSID string
	AuthToken  string
	// NoHistory keeps no messages, only hands them to waiters (Next): a
	// load generator's long run would otherwise keep them all.
	NoHistory bool
	failure   atomic.Pointer[Failure]

	// Verify's knobs (verify.go); zero means Twilio's defaults: 6 digits,
	// 10 minutes, 5 sends and 5 wrong checks per verification.
	VerifyCodeLength int
	VerifyTTL        time.Duration
	VerifyMaxSends   int
	VerifyMaxChecks  int

	mu       sync.Mutex
	messages []Message
	byTo     map[string][]Message
	waiters  map[string][]chan Message
	seq      atomic.Uint64
	// verifications are Verify's pending ones by To, under mu.
	verifications map[string]*verification
}

// New returns a fake that accepts the given credentials.
func New(accountSID, authToken string) *Server {
	return &Server{AccountSID: accountSID, AuthToken: authToken,
		byTo: map[string][]Message{}, waiters: map[string][]chan Message{}}
}

func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if strings.HasPrefix(r.URL.Path, "/v2/") {
		s.serveVerify(w, r) // Twilio Verify, verify.go
		return
	}
	base := "/2010-04-01/Accounts/" + s.AccountSID
	if !s.accepted(w, r, r.Method == http.MethodPost && (r.URL.Path == base+"/Messages.json" || r.URL.Path == base+"/Calls.json")) {
		return
	}
	m := Message{
		To: r.PostForm.Get("To"), From: r.PostForm.Get("From"), Body: r.PostForm.Get("Body"),
		MessagingServiceSID: r.PostForm.Get("MessagingServiceSid"),
		StatusCallback:      r.PostForm.Get("StatusCallback"), Twiml: r.PostForm.Get("Twiml"),
		ContentSID: r.PostForm.Get("ContentSid"), ContentVariables: r.PostForm.Get("ContentVariables"),
	}
	if m.Twiml != "" {
		m.Body = spoken(m.Twiml)
	}
	if m.ContentSID != "" && m.Body == "" {
		m.Body = "template " + m.ContentSID + " " + m.ContentVariables // Code reads the code from the variables
	}
	if m.To == "" || m.Body == "" || (m.From == "" && m.MessagingServiceSID == "") {
		writeError(w, http.StatusBadRequest, 21604, "A 'To' phone number, a 'From' and a 'Body' are required.")
		return
	}
	if f := s.failure.Load(); f != nil && (f.To == "" || f.To == m.To) {
		select {
		case <-time.After(f.Delay):
		case <-r.Context().Done():
			return
		}
		if f.Code == 0 {
			w.WriteHeader(f.HTTPStatus)
			fmt.Fprint(w, "<html>upstream trouble</html>")
			return
		}
		writeError(w, f.HTTPStatus, f.Code, fmt.Sprintf("error %d", f.Code))
		return
	}
	sid := fmt.Sprintf("SM%032d", s.seq.Add(1))
	s.record(m)
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusCreated)
	json.NewEncoder(w).Encode(map[string]any{
		"sid": sid, "account_sid": s.AccountSID, "to": m.To, "from": m.From,
		"body": m.Body, "status": "queued",
	})
}

// accepted answers a request Twilio would refuse, as Twilio would: an
// unknown route (known false), bad credentials, a form that does not parse.
func (s *Server) accepted(w http.ResponseWriter, r *http.Request, known bool) bool {
	switch user, pass, ok := r.BasicAuth(); {
	case !known:
		writeError(w, http.StatusNotFound, 20404, "The requested resource "+r.URL.Path+" was not found")
	case !ok || user != s.AccountSID || pass != s.AuthToken:
		writeError(w, http.StatusUnauthorized, 20003, "Authenticate")
	case r.ParseForm() != nil:
		writeError(w, http.StatusBadRequest, 21100, "bad form")
	default:
		return true
	}
	return false
}

// spoken is what a call's TwiML says the first time, its digits run
// together, so Code reads a call like a text.
func spoken(twiml string) string {
	m := sayRE.FindStringSubmatch(twiml)
	if m == nil {
		return twiml
	}
	return digitRunRE.ReplaceAllStringFunc(m[1], func(run string) string {
		return strings.Map(func(r rune) rune {
			if r >= '0' && r <= '9' {
				return r
			}
			return -1
		}, run)
	})
}

var (
	sayRE      = regexp.MustCompile(`<Say[^>]*>([^<]*)</Say>`)
	digitRunRE = regexp.MustCompile(`\d(?:[ ,.]+\d)+`)
)

func writeError(w http.ResponseWriter, status, code int, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(map[string]any{
		"code": code, "message": msg, "status": status,
		"more_info": fmt.Sprintf("https://www.twilio.com/docs/errors/%d", code),
	})
}

func (s *Server) record(m Message) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.NoHistory {
		s.messages = append(s.messages, m)
		s.byTo[m.To] = append(s.byTo[m.To], m)
	}
	for _, ch := range s.waiters[m.To] {
		ch <- m
	}
	delete(s.waiters, m.To)
}

// SetFailure makes every later request fail as f says; nil heals.
func (s *Server) SetFailure(f *Failure) { s.failure.Store(f) }

// Messages returns every message accepted so far.
func (s *Server) Messages() []Message {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Message(nil), s.messages...)
}

// To returns the messages accepted for one number.
func (s *Server) To(phone string) []Message {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Message(nil), s.byTo[phone]...)
}

// Next returns a channel that receives the next message to phone.
func (s *Server) Next(phone string) <-chan Message {
	ch := make(chan Message, 1)
	s.mu.Lock()
	s.waiters[phone] = append(s.waiters[phone], ch)
	s.mu.Unlock()
	return ch
}

// codePattern is the first run of 4 to 10 digits: the code, in any of the
// languages the texts are written in.
var codePattern = regexp.MustCompile(`\b(\d{4,10})\b`)

// Code extracts the verification code from a message body.
func Code(body string) string {
	m := codePattern.FindStringSubmatch(body)
	if m == nil {
		return ""
	}
	return m[1]
}

// LastCode is the code in the latest message to phone, or "".
func (s *Server) LastCode(phone string) string {
	msgs := s.To(phone)
	if len(msgs) == 0 {
		return ""
	}
	return Code(msgs[len(msgs)-1].Body)
}

// Reset forgets every message.
func (s *Server) Reset() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.messages = nil
	s.byTo = map[string][]Message{}
}

// Sign computes X-Twilio-Signature for a form posted to url, as Twilio
// documents it (HMAC-SHA1 over the URL and the sorted names and values),
// so tests can play Twilio calling a webhook without using the validator
// they test.
func Sign(authToken, url string, form neturl.Values) string {
	keys := make([]string, 0, len(form))
	for k := range form {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	mac := hmac.New(sha1.New, []byte(authToken))
	mac.Write([]byte(url))
	for _, k := range keys {
		mac.Write([]byte(k + form.Get(k)))
	}
	return base64.StdEncoding.EncodeToString(mac.Sum(nil))
}

// Calls are the calls the fake accepted, oldest first.
func (s *Server) Calls() []Message {
	var calls []Message
	for _, m := range s.Messages() {
		if m.Twiml != "" {
			calls = append(calls, m)
		}
	}
	return calls
}
