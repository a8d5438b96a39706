package verify

import (
	"bytes"
	"context"
	"fmt"
	"strconv"
	"testing"

	"github.com/nyaruka/phonenumbers"

	"verifier/token"
)

// BenchmarkRegisterVerify is the rules' share of a flow: normalise, limits,
// a new secret, the code, the check, the token; store and channel in memory.
func BenchmarkRegisterVerify(b *testing.B) {
	store, sms, pub := newMemStore(), &codeChannel{}, &fakePub{}
	tokens, err := token.NewTokens(bytes.Repeat([]byte{1}, 32), nil, token.Options{}) // issuing spends nothing
	if err != nil {
		b.Fatal(err)
	}
	cfg := DefaultConfig()
	cfg.Limits = Limits{}
	svc, err := NewService(cfg, Deps{Store: store, Channels: Channels{DefaultChannel: sms}, Pub: pub, Tokens: tokens})
	if err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		phone := fmt.Sprintf("+1415%07d", 2000000+i%8000000)
		i++
		if o, err := svc.Register(ctx, alice, Registration{Phone: phone, Reverify: true}); err != nil || o.Kind != CodeSent {
			b.Fatal(o, err)
		}
		if o, err := svc.Verify(ctx, alice, phone, sms.code); err != nil || o.Kind != Verified {
			b.Fatal(o, err)
		}
		pub.got = pub.got[:0]
	}
}

// codeChannel keeps only the last code, so the benchmark measures the rules.
type codeChannel struct{ code string }

func (c *codeChannel) Deliver(_ context.Context, d Delivery) error {
	c.code = d.Code
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

// BenchmarkParseFreshE164 parses distinct numbers already in E.164, as
// they arrive from the page, so the cache never hits.
func BenchmarkParseFreshE164(b *testing.B) {
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		i++
		if _, err := parsePhone(fmt.Sprintf("+1415%07d", 2000000+i%8000000), "US"); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkUSValidity: the US validity check of a fresh +1 number, from
// the precompiled plan and from libphonenumber, on the same numbers.
func BenchmarkUSValidity(b *testing.B) {
	nationals := make([]string, 4096)
	nums := make([]*phonenumbers.PhoneNumber, len(nationals))
	for i := range nationals {
		nationals[i] = fmt.Sprintf("%03d%07d", 201+i%700, 2000000+i*977)
		n, _ := strconv.ParseUint(nationals[i], 10, 64)
		cc := int32(1)
		nums[i] = &phonenumbers.PhoneNumber{CountryCode: &cc, NationalNumber: &n}
	}
	b.Run("precompiled plan", func(b *testing.B) {
		p := usPlan()
		i := 0
		for b.Loop() {
			p.valid(nationals[i%len(nationals)])
			i++
		}
	})
	b.Run("libphonenumber", func(b *testing.B) {
		i := 0
		for b.Loop() {
			phonenumbers.IsValidNumberForRegion(nums[i%len(nums)], "US")
			i++
		}
	})
}
