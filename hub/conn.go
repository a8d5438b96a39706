package hub

import (
	"sync"
	"time"

	"github.com/gorilla/websocket"
)

// Conn is one browser connection.
type Conn struct {
	id     string
	ws     *websocket.Conn
	hub    *Hub
	send   chan []byte
	done   chan struct{} // closed once the connection is finished
	once   sync.Once
	client string
	origin string
	topic  string // owned by the hub's goroutine
}

// ID names the connection uniquely within the process.
func (c *Conn) ID() string { return c.id }

// ClientAddr is the peer's IP address.
func (c *Conn) ClientAddr() string { return c.client }

// Origin is the handshake's Origin header ("" when none was sent).
func (c *Conn) Origin() string { return c.origin }

// Send queues a frame without waiting. A connection whose queue is full is
// too slow to keep: it is dropped rather than allowed to hold anyone up.
func (c *Conn) Send(frame []byte) {
	select {
	case <-c.done:
	case c.send <- frame:
	default:
		c.hub.log.Warn("dropping slow connection", "conn", c.id)
		c.finish()
	}
}

// Subscribe makes the connection hear topic's frames instead of any topic
// it heard before.
func (c *Conn) Subscribe(topic string) {
	select {
	case c.hub.subscribe <- subscription{c, topic}:
	case <-c.hub.stopped:
	}
}

func (c *Conn) finish() {
	c.once.Do(func() {
		close(c.done)
		c.ws.Close()
	})
}

// goAway says 1001 to the peer and closes. WriteControl may run beside the
// writer goroutine; gorilla serialises them.
func (c *Conn) goAway() {
	msg := websocket.FormatCloseMessage(websocket.CloseGoingAway, "server shutting down")
	_ = c.ws.WriteControl(websocket.CloseMessage, msg, time.Now().Add(time.Second))
	c.finish()
}

func (c *Conn) readPump() {
	defer func() {
		c.finish()
		select {
		case c.hub.unregister <- c:
		case <-c.hub.stopped:
		}
	}()
	wait := c.hub.cfg.PongWait
	c.ws.SetReadLimit(c.hub.cfg.MaxFrameBytes) // gorilla answers 1009 above it
	_ = c.ws.SetReadDeadline(time.Now().Add(wait))
	c.ws.SetPongHandler(func(string) error {
		return c.ws.SetReadDeadline(time.Now().Add(wait))
	})
	flood := bucket{rate: c.hub.cfg.FramesPerSec, burst: float64(c.hub.cfg.FrameBurst)}
	for {
		_, frame, err := c.ws.ReadMessage()
		if err != nil {
			return
		}
		if !flood.allow(time.Now()) {
			msg := websocket.FormatCloseMessage(websocket.ClosePolicyViolation, "too many messages")
			_ = c.ws.WriteControl(websocket.CloseMessage, msg, time.Now().Add(time.Second))
			return
		}
		// Any frame proves the peer alive, as a pong does.
		_ = c.ws.SetReadDeadline(time.Now().Add(wait))
		c.hub.handler.HandleFrame(c.hub.ctx, c, frame)
	}
}

func (c *Conn) writePump() {
	ping := time.NewTicker(c.hub.cfg.PongWait * 9 / 10)
	defer func() {
		ping.Stop()
		c.finish()
	}()
	write := func(kind int, data []byte) error {
		_ = c.ws.SetWriteDeadline(time.Now().Add(c.hub.cfg.WriteWait))
		return c.ws.WriteMessage(kind, data)
	}
	for {
		select {
		case frame := <-c.send:
			if write(websocket.TextMessage, frame) != nil {
				return
			}
		case <-ping.C:
			if write(websocket.PingMessage, nil) != nil {
				return
			}
		case <-c.done:
			return
		}
	}
}

// bucket is a token bucket owned by one reader goroutine.
type bucket struct {
	rate, burst, tokens float64
	last                time.Time
}

func (b *bucket) allow(now time.Time) bool {
	if b.last.IsZero() {
		b.tokens = b.burst
	} else {
		b.tokens = min(b.burst, b.tokens+now.Sub(b.last).Seconds()*b.rate)
	}
	b.last = now
	if b.tokens < 1 {
		return false
	}
	b.tokens--
	return true
}
