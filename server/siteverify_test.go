package server

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"verifier/clientip"
	tokenpkg "verifier/token"
	"verifier/verify"
)

// anyToken redeems every token as a dev-mode proof for one number.
type anyToken struct{}

func (anyToken) Redeem(context.Context, string) (tokenpkg.Claims, error) {
	return tokenpkg.Claims{Phone: "+14155552671", VerifiedAt: time.Now().Unix(), Dev: true}, nil
}

const wrongSecretBudget = 10

func newTestSiteVerify() *SiteVerify {
	return &SiteVerify{Tokens: anyToken{}, APIKey: "right-key", Log: slog.New(slog.DiscardHandler),
		ClientAddr: clientip.New(nil).Of,
		WrongSecrets: verify.NewLimiter(verify.Limit{Name: "wrong_secret",
			Rate: verify.Rate{N: wrongSecretBudget, Per: time.Minute}, Key: verify.ByClient})}
}

func postSiteverify(h http.Handler, from, secret string) (*httptest.ResponseRecorder, siteverifyResult) {
	r := httptest.NewRequest("POST", "/api/siteverify", strings.NewReader("secret="+secret+"&token=t"))
	r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	r.RemoteAddr = from + ":4711"
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	var res siteverifyResult
	json.Unmarshal(w.Body.Bytes(), &res)
	return w, res
}

func TestParallelWrongSecretsGetNoMoreThanTheBudget(t *testing.T) {
	sv := newTestSiteVerify()
	const n = 50
	// Each request's every address lookup waits for the others' (the
	// handler's steps run in lockstep), so a check that counts in a later
	// step than it refuses lets all of them through, every time.
	step := &lockstep{n: n, resolve: sv.ClientAddr}
	sv.ClientAddr = step.clientAddr
	var mu sync.Mutex
	got := map[int]int{}
	var wg sync.WaitGroup
	for range n {
		wg.Go(func() {
			w, _ := postSiteverify(sv, "192.0.2.1", "guess")
			mu.Lock()
			got[w.Code]++
			mu.Unlock()
		})
	}
	wg.Wait()
	if got[401] != wrongSecretBudget || got[429] != n-wrongSecretBudget || len(got) != 2 {
		t.Fatalf("statuses %v, want %d×401 and %d×429", got, wrongSecretBudget, n-wrongSecretBudget)
	}
}

// lockstep holds a request's k-th ClientAddr call until n requests have
// made their k-th call, or a moment has passed (some make fewer calls).
type lockstep struct {
	n       int
	resolve func(*http.Request) string
	mu      sync.Mutex
	calls   map[*http.Request]int
	rounds  []*round
}

type round struct {
	arrived int
	all     chan struct{}
}

func (l *lockstep) clientAddr(r *http.Request) string {
	l.mu.Lock()
	if l.calls == nil {
		l.calls = map[*http.Request]int{}
	}
	k := l.calls[r]
	l.calls[r]++
	if k == len(l.rounds) {
		l.rounds = append(l.rounds, &round{all: make(chan struct{})})
	}
	rd := l.rounds[k]
	if rd.arrived++; rd.arrived == l.n {
		close(rd.all)
	}
	l.mu.Unlock()
	select {
	case <-rd.all:
	case <-time.After(200 * time.Millisecond):
	}
	return l.resolve(r)
}

func TestTheRightSecretWorksFromAnAddressOverItsWrongSecretBudget(t *testing.T) {
	sv := newTestSiteVerify()
	for range wrongSecretBudget {
		postSiteverify(sv, "192.0.2.1", "guess")
	}
	w, res := postSiteverify(sv, "192.0.2.1", "guess")
	retry, _ := strconv.Atoi(w.Header().Get("Retry-After"))
	if w.Code != 429 || strings.Join(res.ErrorCodes, ",") != errRateLimited || res.RetryAfter < 1 || res.RetryAfter > 60 || retry != res.RetryAfter {
		t.Fatalf("wrong secret past the budget: %d %+v Retry-After %q", w.Code, res, w.Header().Get("Retry-After"))
	}
	if w, res := postSiteverify(sv, "192.0.2.1", "right-key"); w.Code != 200 || !res.Success || !res.Dev {
		t.Fatalf("right secret from the same address: %d %+v", w.Code, res)
	}
	if w, _ := postSiteverify(sv, "192.0.2.2", "guess"); w.Code != 401 {
		t.Fatalf("another address's wrong secret: %d, want 401", w.Code)
	}
	// A missing secret is a malformed request, not a guess: it spends nothing.
	sv = newTestSiteVerify()
	for range 2 * wrongSecretBudget {
		if w, _ := postSiteverify(sv, "192.0.2.1", ""); w.Code != 400 {
			t.Fatalf("missing secret: %d, want 400", w.Code)
		}
	}
	if w, _ := postSiteverify(sv, "192.0.2.1", "guess"); w.Code != 401 {
		t.Fatalf("wrong secret after missing ones: %d, want 401", w.Code)
	}
}

func TestLimitBody(t *testing.T) {
	var got int
	echo := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, err := io.ReadAll(r.Body)
		if err != nil {
			t.Errorf("handler read: %v", err)
		}
		got = len(b)
		w.WriteHeader(http.StatusNoContent)
	})
	srv := httptest.NewServer(limitBody(echo, maxBody, bodyReadTimeout, errorTooLarge))
	defer srv.Close()
	for _, tc := range []struct {
		name    string
		size    int
		chunked bool
		status  int
	}{
		{"at the limit", maxBody, false, 204},
		{"over the limit", maxBody + 1, false, 413},
		{"at the limit, chunked", maxBody, true, 204},
		{"over the limit, chunked", 100 << 10, true, 413},
	} {
		got = -1
		var body io.Reader = strings.NewReader(strings.Repeat("a", tc.size))
		if tc.chunked {
			body = io.MultiReader(body) // hides the length: sent chunked
		}
		resp, err := http.Post(srv.URL, "text/plain", body)
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		var answer map[string]string
		json.NewDecoder(resp.Body).Decode(&answer)
		resp.Body.Close()
		if resp.StatusCode != tc.status {
			t.Errorf("%s: status %d, want %d", tc.name, resp.StatusCode, tc.status)
		}
		switch {
		case tc.status == 204 && got != tc.size:
			t.Errorf("%s: handler read %d bytes, want %d", tc.name, got, tc.size)
		case tc.status == 413 && (got != -1 || answer["error"] == ""):
			t.Errorf("%s: handler ran (%d bytes) or no error in %v", tc.name, got, answer)
		}
	}
}
