package hub

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gorilla/websocket"
)

// subscriber subscribes each connection to the topic its frame names.
type subscriber struct{}

// "tag fr +1" tags the connection fr first.
func (subscriber) HandleFrame(_ context.Context, c *Conn, frame []byte) {
	topic := string(frame)
	if rest, ok := strings.CutPrefix(topic, "tag "); ok {
		tag, t, _ := strings.Cut(rest, " ")
		c.SetTag(tag)
		topic = t
	}
	c.Subscribe(topic)
	c.Send([]byte("subscribed " + c.ID()))
}

func startHub(t *testing.T, cfg Config) (*Hub, string) {
	t.Helper()
	h := New(cfg, slog.New(slog.DiscardHandler))
	srv := httptest.NewServer(h.Endpoint(subscriber{}))
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		h.Shutdown(ctx)
		srv.Close()
	})
	return h, "ws" + strings.TrimPrefix(srv.URL, "http")
}

func subscribe(t *testing.T, url, topic string) *websocket.Conn {
	t.Helper()
	ws, _ := subscribeID(t, url, topic)
	return ws
}

// subscribeID subscribes and learns the connection's id.
func subscribeID(t *testing.T, url, topic string) (*websocket.Conn, string) {
	t.Helper()
	ws, _, err := websocket.DefaultDialer.Dial(url, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ws.Close() })
	ws.WriteMessage(websocket.TextMessage, []byte(topic))
	ws.SetReadDeadline(time.Now().Add(5 * time.Second))
	_, msg, err := ws.ReadMessage()
	id, ok := strings.CutPrefix(string(msg), "subscribed ")
	if err != nil || !ok {
		t.Fatalf("subscribe: %q, %v", msg, err)
	}
	return ws, id
}

func TestPublishReachesSubscribersOfTheTopicExceptTheExcluded(t *testing.T) {
	h, url := startHub(t, Config{})
	a, aID := subscribeID(t, url, "+1")
	b, other := subscribe(t, url, "+1"), subscribe(t, url, "+2")
	h.Publish("+1", same([]byte("hello")), aID)
	b.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, msg, err := b.ReadMessage(); err != nil || string(msg) != "hello" {
		t.Fatalf("b got %q, %v", msg, err)
	}
	for _, ws := range []*websocket.Conn{a, other} {
		ws.SetReadDeadline(time.Now().Add(200 * time.Millisecond))
		if _, msg, err := ws.ReadMessage(); err == nil {
			t.Fatalf("got %q, want nothing", msg)
		}
	}
}

func TestResubscribingLeavesTheOldTopic(t *testing.T) {
	h, url := startHub(t, Config{})
	ws := subscribe(t, url, "+1")
	ws.WriteMessage(websocket.TextMessage, []byte("+2"))
	ws.ReadMessage()
	h.Publish("+1", same([]byte("old")), "")
	h.Publish("+2", same([]byte("new")), "")
	ws.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, msg, err := ws.ReadMessage(); err != nil || string(msg) != "new" {
		t.Fatalf("got %q, %v; want new", msg, err)
	}
}

func TestASlowReaderIsDroppedAndDelaysNoOne(t *testing.T) {
	h, url := startHub(t, Config{SendQueue: 4})
	slow := subscribe(t, url, "+1") // never reads again
	fast := subscribe(t, url, "+1")
	const frames = 400
	payload := []byte(strings.Repeat("x", 64<<10))
	// In lockstep with the reading client, so only the slow one falls behind.
	for i := range frames {
		h.Publish("+1", same(payload), "")
		fast.SetReadDeadline(time.Now().Add(5 * time.Second))
		if _, _, err := fast.ReadMessage(); err != nil {
			t.Fatalf("the reading client stalled at frame %d: %v", i, err)
		}
	}
	slow.SetReadDeadline(time.Now().Add(10 * time.Second))
	n := 0
	for {
		if _, _, err := slow.ReadMessage(); err != nil {
			break
		}
		n++
	}
	if n >= frames {
		t.Fatalf("the slow client got all %d frames: it was never dropped", n)
	}
}

func TestOriginsOutsideTheAllowListAreRefused(t *testing.T) {
	_, url := startHub(t, Config{AllowedOrigins: []string{"https://shop.example/"}})
	for origin, want := range map[string]int{
		"":                         http.StatusSwitchingProtocols,
		"https://shop.example":     http.StatusSwitchingProtocols,
		"https://SHOP.example":     http.StatusSwitchingProtocols,
		"https://shop.example:444": http.StatusForbidden,
		"http://shop.example":      http.StatusForbidden,
		"https://evil.example":     http.StatusForbidden,
		"::not a url":              http.StatusForbidden,
	} {
		hdr := http.Header{}
		if origin != "" {
			hdr.Set("Origin", origin)
		}
		ws, resp, _ := websocket.DefaultDialer.Dial(url, hdr)
		if resp == nil || resp.StatusCode != want {
			t.Errorf("origin %q: %v, want %d", origin, resp, want)
		}
		if ws != nil {
			ws.Close()
		}
	}
}

func TestShutdownSays1001AndRefusesNewConnections(t *testing.T) {
	h, url := startHub(t, Config{})
	ws := subscribe(t, url, "+1")
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := h.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	_, _, err := ws.ReadMessage()
	if !websocket.IsCloseError(err, websocket.CloseGoingAway) {
		t.Fatalf("err = %v, want 1001", err)
	}
	if _, resp, _ := websocket.DefaultDialer.Dial(url, nil); resp == nil || resp.StatusCode != http.StatusServiceUnavailable {
		t.Fatalf("after shutdown: %v", resp)
	}
}

func TestAFloodOfFramesClosesTheConnectionWith1008(t *testing.T) {
	_, url := startHub(t, Config{FramesPerSec: 1, FrameBurst: 5})
	ws := subscribe(t, url, "+1")
	for range 10 {
		ws.WriteMessage(websocket.TextMessage, []byte("+1"))
	}
	ws.SetReadDeadline(time.Now().Add(5 * time.Second))
	for {
		_, _, err := ws.ReadMessage()
		if err == nil {
			continue
		}
		if !websocket.IsCloseError(err, websocket.ClosePolicyViolation) {
			t.Fatalf("err = %v, want close 1008", err)
		}
		return
	}
}

func TestPingsKeepAnAnsweringPeerAndDropASilentOne(t *testing.T) {
	_, url := startHub(t, Config{PongWait: 300 * time.Millisecond})
	answering := subscribe(t, url, "+1")
	pings := make(chan struct{}, 100)
	answering.SetPingHandler(func(data string) error {
		pings <- struct{}{}
		return answering.WriteControl(websocket.PongMessage, []byte(data), time.Now().Add(time.Second))
	})
	go func() {
		answering.SetReadDeadline(time.Time{})
		for {
			if _, _, err := answering.ReadMessage(); err != nil {
				return
			}
		}
	}()
	silent, _, err := websocket.DefaultDialer.Dial(url, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer silent.Close()
	// The silent peer never reads, so it never answers a ping.
	time.Sleep(time.Second)
	if len(pings) < 2 {
		t.Fatalf("%d pings in a second with a 270 ms period", len(pings))
	}
	silent.SetReadDeadline(time.Now().Add(2 * time.Second))
	for {
		if _, _, err := silent.ReadMessage(); err != nil {
			if strings.Contains(err.Error(), "timeout") {
				t.Fatalf("the silent peer was kept: %v", err)
			}
			break
		}
	}
	if err := answering.WriteMessage(websocket.TextMessage, []byte("+2")); err != nil {
		t.Fatalf("the answering peer was dropped: %v", err)
	}
}

// BenchmarkFanout publishes one frame to 100 connections on a topic and
// waits until every one has read it.
func BenchmarkFanout(b *testing.B) {
	h := New(Config{}, slog.New(slog.DiscardHandler))
	srv := httptest.NewServer(h.Endpoint(subscriber{}))
	defer srv.Close()
	url := "ws" + strings.TrimPrefix(srv.URL, "http")
	const subscribers = 100
	got := make(chan struct{}, subscribers)
	for range subscribers {
		ws, _, err := websocket.DefaultDialer.Dial(url, nil)
		if err != nil {
			b.Fatal(err)
		}
		defer ws.Close()
		ws.WriteMessage(websocket.TextMessage, []byte("+1"))
		ws.ReadMessage() // "subscribed"
		go func() {
			for {
				if _, _, err := ws.ReadMessage(); err != nil {
					return
				}
				got <- struct{}{}
			}
		}()
	}
	frame := []byte(`{"event":"verified","data":{"phone_number":"+14155552671","verified_at":"2026-11-22T12:00:00Z"}}`)
	b.ReportAllocs()
	for b.Loop() {
		h.Publish("+1", same(frame), "")
		for range subscribers {
			<-got
		}
	}
}

// dialFrom opens a WebSocket from a given loopback source address.
func dialFrom(url, source string) (*websocket.Conn, *http.Response, error) {
	d := websocket.Dialer{NetDialContext: (&net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(source)}}).DialContext}
	return d.Dial(url, nil)
}

func TestConnectionCapsRefuseWithAStatusAndFreeUpOnClose(t *testing.T) {
	h, url := startHub(t, Config{Limits: Limits{Max: 3, PerClient: 2}})
	// Every client socket stays referenced until the end: one dropped would
	// be closed by a finalizer at the next GC, freeing a slot behind the
	// test's back.
	open := func(source string) *websocket.Conn {
		t.Helper()
		ws, _, err := dialFrom(url, source)
		if err != nil {
			t.Fatalf("from %s: %v", source, err)
		}
		t.Cleanup(func() { ws.Close() })
		return ws
	}
	a1 := open("127.0.0.1")
	open("127.0.0.1")
	_, resp, err := dialFrom(url, "127.0.0.1")
	if err == nil || resp == nil || resp.StatusCode != http.StatusTooManyRequests {
		t.Fatalf("third from one address: %v %v, want 429", err, resp)
	}
	if body, _ := io.ReadAll(resp.Body); !strings.Contains(string(body), `"error"`) {
		t.Fatalf("refusal body %q", body)
	}
	open("127.0.0.2")
	_, resp, err = dialFrom(url, "127.0.0.3")
	if err == nil || resp == nil || resp.StatusCode != http.StatusServiceUnavailable {
		t.Fatalf("fourth connection: %v %v, want 503", err, resp)
	}
	a1.Close()
	for deadline := time.Now().Add(5 * time.Second); h.Open() != 2; time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("%d connections counted open after one of three closed, want 2", h.Open())
		}
	}
	open("127.0.0.3")
}

func TestIdleConnectionsAreClosedButTalkingOnesKept(t *testing.T) {
	_, url := startHub(t, Config{PongWait: 200 * time.Millisecond, Limits: Limits{IdleTimeout: 500 * time.Millisecond}})
	idle := subscribe(t, url, "+1")
	talking := subscribe(t, url, "+2")
	replies := make(chan struct{}, 100)
	go func() { // answers pings and reads the "subscribed" replies
		for {
			if _, _, err := talking.ReadMessage(); err != nil {
				close(replies)
				return
			}
			replies <- struct{}{}
		}
	}()
	talked := make(chan error, 1)
	go func() {
		for range 15 { // a frame every 100 ms for longer than the idle timeout
			if err := talking.WriteMessage(websocket.TextMessage, []byte("+2")); err != nil {
				talked <- err
				return
			}
			time.Sleep(100 * time.Millisecond)
		}
		talked <- nil
	}()
	idle.SetReadDeadline(time.Now().Add(5 * time.Second))
	_, _, err := idle.ReadMessage()
	var ce *websocket.CloseError
	if !errors.As(err, &ce) || ce.Code != websocket.CloseNormalClosure || ce.Text != "idle timeout" {
		t.Fatalf("idle peer saw %v, want close 1000 idle timeout", err)
	}
	if err := <-talked; err != nil {
		t.Fatalf("the talking peer was dropped: %v", err)
	}
	for range 15 {
		select {
		case _, open := <-replies:
			if !open {
				t.Fatal("the talking peer was closed")
			}
		case <-time.After(5 * time.Second):
			t.Fatal("the talking peer got no answer")
		}
	}
}

// same renders one frame for every tag.
func same(frame []byte) Render { return func(string) []byte { return frame } }

func TestPublishedFramesAreRenderedPerTag(t *testing.T) {
	h, url := startHub(t, Config{})
	en, fr, fr2 := subscribe(t, url, "tag en +1"), subscribe(t, url, "tag fr +1"), subscribe(t, url, "tag fr +1")
	var rendered atomic.Int32
	h.Publish("+1", func(tag string) []byte { rendered.Add(1); return []byte("hello " + tag) }, "")
	for want, ws := range map[string]*websocket.Conn{"hello en": en, "hello fr": fr} {
		ws.SetReadDeadline(time.Now().Add(5 * time.Second))
		if _, msg, err := ws.ReadMessage(); err != nil || string(msg) != want {
			t.Fatalf("got %q, %v; want %q", msg, err, want)
		}
	}
	fr2.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, msg, err := fr2.ReadMessage(); err != nil || string(msg) != "hello fr" {
		t.Fatalf("second fr got %q, %v", msg, err)
	}
	if n := rendered.Load(); n != 2 {
		t.Fatalf("rendered %d times for 3 listeners in 2 languages", n)
	}
}

func TestSendToReachesOneConnectionOnlyAndIgnoresGoneOnes(t *testing.T) {
	h, url := startHub(t, Config{})
	a, aID := subscribeID(t, url, "tag fr +1")
	b := subscribe(t, url, "+1")
	h.SendTo(aID, func(tag string) []byte { return []byte("for you in " + tag) })
	h.SendTo("c-gone.1", func(string) []byte { t.Error("rendered for a connection that is not there"); return nil })
	h.Publish("+1", same([]byte("for all")), "")
	a.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, msg, err := a.ReadMessage(); err != nil || string(msg) != "for you in fr" {
		t.Fatalf("a got %q, %v", msg, err)
	}
	b.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, msg, err := b.ReadMessage(); err != nil || string(msg) != "for all" {
		t.Fatalf("b got %q, %v; the direct frame must not reach it", msg, err)
	}
}

func TestConnectionIDsDifferBetweenHubs(t *testing.T) {
	_, url1 := startHub(t, Config{})
	_, url2 := startHub(t, Config{})
	_, id1 := subscribeID(t, url1, "+1")
	_, id2 := subscribeID(t, url2, "+1")
	if id1 == id2 {
		t.Fatalf("two hubs (a restart) both named their first connection %q", id1)
	}
}

// publishThenReply publishes each frame to the connection's own topic and
// then replies to it.
type publishThenReply struct{ h *Hub }

func (p publishThenReply) HandleFrame(_ context.Context, c *Conn, frame []byte) {
	c.Subscribe("own")
	n := string(frame)
	p.h.Publish("own", same([]byte("published "+n)), "")
	c.Reply([]byte("reply " + n))
}

func TestAReplyWrittenOnTheReaderKeepsItsPlaceBehindQueuedFrames(t *testing.T) {
	h := New(Config{FramesPerSec: 1000, FrameBurst: 1000}, slog.New(slog.DiscardHandler))
	srv := httptest.NewServer(h.Endpoint(publishThenReply{h}))
	t.Cleanup(srv.Close)
	ws, _, err := websocket.DefaultDialer.Dial("ws"+strings.TrimPrefix(srv.URL, "http"), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer ws.Close()
	// Rounds of 5 frames: 10 answers fit in the send queue (16), so no
	// round may drop the connection as too slow.
	ws.SetReadDeadline(time.Now().Add(10 * time.Second))
	for round := range 40 {
		for i := range 5 {
			ws.WriteMessage(websocket.TextMessage, []byte(strconv.Itoa(round*5+i)))
		}
		for i := range 5 {
			n := strconv.Itoa(round*5 + i)
			for _, want := range []string{"published " + n, "reply " + n} {
				if _, msg, err := ws.ReadMessage(); err != nil || string(msg) != want {
					t.Fatalf("got %q, %v; want %q", msg, err, want)
				}
			}
		}
	}
}
