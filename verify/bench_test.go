package verify

import (
	"context"
	"fmt"
	"testing"
	"time"
)

// BenchmarkRegisterVerify is the rules' share of a flow: normalise, limits,
// a new secret, the code, the check, the token; store and sender in memory.
func BenchmarkRegisterVerify(b *testing.B) {
	store, sender, pub := newMemStore(), &codeSender{}, &fakePub{}
	tokens, _ := NewTokens(key1, &memSpent{ids: map[string]time.Time{}}, nil, nil)
	cfg := DefaultConfig()
	cfg.Limits = Limits{}
	svc, _ := NewService(cfg, Deps{Store: store, Sender: sender, Pub: pub, Tokens: tokens})
	ctx := context.Background()
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		phone := fmt.Sprintf("+1415%07d", 2000000+i%8000000)
		i++
		if _, ev := svc.Register(ctx, alice, phone, true); ev.Name != EventCodeGenerated {
			b.Fatal(ev)
		}
		if ev := svc.Verify(ctx, alice, phone, sender.code); ev.Name != EventVerified {
			b.Fatal(ev)
		}
		pub.got = pub.got[:0]
	}
}

// codeSender keeps only the last code, so the benchmark measures the rules.
type codeSender struct{ code string }

func (c *codeSender) Send(_ context.Context, m Message) error {
	c.code = codeRe.FindStringSubmatch(m.Body)[1]
	return nil
}

func BenchmarkNormalizePhone(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		if _, err := NormalizePhone("(415) 555-2671", "US"); err != nil {
			b.Fatal(err)
		}
	}
}
