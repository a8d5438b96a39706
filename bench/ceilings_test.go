// Package bench holds the ceilings the product is judged against: what a
// bare gorilla echo server and bbolt's own durable Batch can do here.
package bench

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/gorilla/websocket"
	bolt "go.etcd.io/bbolt"
)

// BenchmarkGorillaEcho: round trips of a 100-byte JSON frame through a bare
// echo server, 100 connections at once.
func BenchmarkGorillaEcho(b *testing.B) {
	upgrader := websocket.Upgrader{ReadBufferSize: 1024, WriteBufferSize: 1024}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ws, err := upgrader.Upgrade(w, r, nil)
		if err != nil {
			return
		}
		defer ws.Close()
		for {
			kind, msg, err := ws.ReadMessage()
			if err != nil || ws.WriteMessage(kind, msg) != nil {
				return
			}
		}
	}))
	defer srv.Close()
	url := "ws" + strings.TrimPrefix(srv.URL, "http")
	msg := []byte(`{"event":"verify","data":{"phone_number":"+14155552671","code":"123456","padding":"xxxxxxx"}}`)
	b.SetParallelism(50) // 100 connections on 2 cores
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		ws, _, err := websocket.DefaultDialer.Dial(url, nil)
		if err != nil {
			b.Error(err)
			return
		}
		defer ws.Close()
		for pb.Next() {
			if ws.WriteMessage(websocket.TextMessage, msg) != nil {
				return
			}
			if _, _, err := ws.ReadMessage(); err != nil {
				return
			}
		}
	})
}

// BenchmarkBoltBatch: durable single-key writes through bbolt's Batch from
// 64 goroutines, the way the deps notes measured it.
func BenchmarkBoltBatch(b *testing.B) {
	db, err := bolt.Open(filepath.Join(b.TempDir(), "b.db"), 0o600, nil)
	if err != nil {
		b.Fatal(err)
	}
	defer db.Close()
	db.Update(func(tx *bolt.Tx) error { _, err := tx.CreateBucket([]byte("b")); return err })
	var n atomic.Int64
	value := make([]byte, 200)
	b.SetParallelism(32)
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			key := fmt.Sprintf("+1415%07d", n.Add(1))
			err := db.Batch(func(tx *bolt.Tx) error { return tx.Bucket([]byte("b")).Put([]byte(key), value) })
			if err != nil {
				b.Error(err)
				return
			}
		}
	})
}
