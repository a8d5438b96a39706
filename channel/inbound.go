package channel

import (
	"context"

	"verifier/verify"
)

// Inbound is "text us the code": it sends nothing, and names the number
// the person texts the code to from the phone being verified.
type Inbound struct {
	number string // E.164
}

var _ verify.Receiver = Inbound{}

// NewInbound receives codes at number, the Twilio number whose incoming
// messages reach /twilio/inbound.
func NewInbound(number string) Inbound { return Inbound{number: number} }

// Deliver sends nothing: the code travels the other way.
func (Inbound) Deliver(context.Context, verify.Delivery) error { return nil }

// Number implements verify.Receiver.
func (in Inbound) Number() string { return in.number }
