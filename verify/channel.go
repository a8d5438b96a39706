package verify

import (
	"context"
	"errors"
)

// Delivery is one code to bring to a person.
type Delivery struct {
	To   string // E.164
	Code string
	Lang string // the person's language, "" for the default
	Host string // the host whose page asked (for WebOTP), "" for the server's own
	Conn string // the connection that asked (the dev inbox shows the text there only)
	Link string // the id of a tap-to-verify link to send with the code, "" for none
}

// Channel is one way to bring a code to a person: a text, a call, a
// message on another app. It words the message in d.Lang itself. Deliver
// must honour ctx or its own timeout.
type Channel interface {
	Deliver(ctx context.Context, d Delivery) error
}

// Receiver is a channel that sends nothing: the person texts the code
// shown on the page to Number from the phone being verified, and
// Service.Received checks what arrives. Nothing sent costs nothing, so
// texting numbers that way gains an attacker nothing.
type Receiver interface {
	Channel
	Number() string // E.164
}

// Links make the ids of tap-to-verify links, each naming its number and a
// nonce that its pending code keeps; only this server can make or open one.
type Links interface {
	New(phone string) (id, nonce string, err error)
	Open(id string) (phone, nonce string, err error)
}

// Secrets seal the keys of authenticator apps before they are stored.
type Secrets interface {
	Seal(plain []byte) ([]byte, error)
	Open(sealed []byte) ([]byte, error)
}

// Channels maps the names register may ask for ("sms", "call") to the
// channels this server offers.
type Channels map[string]Channel

// DefaultChannel is used when register names none.
const DefaultChannel = "sms"

// Errors a Channel wraps to say what became of a delivery. Any other error
// is uncertain: the message may have left (a timeout, a 5xx, a cut
// connection), so the code stays valid and the send stays counted.
var (
	// ErrRejectedNumber means the provider refused the number itself (not a
	// mobile, not a number, blocked); retrying is useless.
	ErrRejectedNumber = errors.New("number rejected by provider")
	// ErrNotSent means the message provably never left: the request was
	// never written, the connection was refused, or the provider answered
	// that it sent nothing.
	ErrNotSent = errors.New("message not sent")
	// ErrSendsExhausted means the code engine refuses to send the number
	// more codes for now (Twilio Verify's 60203); nothing was sent.
	ErrSendsExhausted = errors.New("the code engine sends this number no more codes for now")
)

// Engine checks the codes that a code engine outside the server made and
// sent (Twilio Verify): its channels deliver with no code of ours, and the
// store keeps no secret for them.
type Engine interface {
	// Check reports whether code is the number's pending code. Its errors
	// say the engine knows no pending code (ErrNoCode), it has had too
	// many wrong ones (ErrChecksExhausted), or anything else: the check
	// did not happen.
	Check(ctx context.Context, to, code string) (right bool, err error)
}

// Errors of Engine.Check.
var (
	ErrNoCode          = errors.New("the code engine has no pending code for this number")
	ErrChecksExhausted = errors.New("the code engine has had too many wrong codes for this number")
)

// Confirmer sends the text that tells a person their number is now
// verified, in their language.
type Confirmer interface {
	Confirm(ctx context.Context, to, lang string) error
}
