package channel

import (
	"context"
	"strings"
	"testing"

	"verifier/verify"
)

type dialer struct{ v Voice }

func (d *dialer) Call(_ context.Context, v Voice) error { d.v = v; return nil }

func TestACallSaysTheDigitsOneByOneTwiceInTheLanguage(t *testing.T) {
	d := &dialer{}
	call, err := NewCall(d, map[string]string{"en": "Your code is {digits}.", "fr": "Votre code est {digits} & voilà <ok>."})
	if err != nil {
		t.Fatal(err)
	}
	call.Deliver(context.Background(), verify.Delivery{To: "+14155552671", Code: "123456", Lang: "fr", Conn: "c1"})
	say := `<Say language="fr-FR">Votre code est 1, 2, 3, 4, 5, 6 &amp; voilà &lt;ok&gt;.</Say>`
	if d.v.To != "+14155552671" || d.v.Conn != "c1" || strings.Count(d.v.TwiML, say) != 2 || !strings.Contains(d.v.TwiML, "<Pause") {
		t.Fatalf("voice %+v", d.v)
	}
	if d.v.Spoken != "Votre code est 1, 2, 3, 4, 5, 6 & voilà <ok>." {
		t.Fatalf("spoken %q", d.v.Spoken)
	}
	call.Deliver(context.Background(), verify.Delivery{To: "+14155552671", Code: "9876", Lang: "de"})
	if !strings.Contains(d.v.TwiML, `<Say language="en-US">Your code is 9, 8, 7, 6.</Say>`) {
		t.Fatalf("fallback %q", d.v.TwiML)
	}
}

func TestCallTextsMustHoldTheDigits(t *testing.T) {
	if _, err := NewCall(&dialer{}, map[string]string{"en": "hello"}); err == nil {
		t.Fatal("accepted a text without {digits}")
	}
	if _, err := NewCall(&dialer{}, map[string]string{"fr": "{digits}"}); err == nil {
		t.Fatal("accepted texts without English")
	}
}
