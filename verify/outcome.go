package verify

import (
	"errors"
	"time"
)

// Kind names what the rules decided. The server renders each kind as the
// protocol's event and reason, with a message in the person's language.
type Kind uint8

// The outcomes of the rules.
const (
	_                 Kind = iota
	CodeSent               // a new code is on its way
	Verified               // the code was right
	InvalidPhone           // not a dialable number; nothing stored or sent
	NumberRejected         // the provider refused the number; nothing left pending
	CountryNotAllowed      // the number's country is not served
	AlreadyVerified        // verified before, and no reverify asked
	AlreadyRequested       // a code is pending and the resend wait has not passed
	CodePending            // resume: a code is pending
	NothingPending         // resume: the flow is over, start again
	RateLimited            // a send limit is full: retry after RetryAfter
	Locked                 // the number's wrong-code budget or the client's lookups are spent: retry after RetryAfter
	SendFailed             // the message provably never left; nothing left half-done
	SendUncertain          // the send failed but may have reached the phone: the code stays valid
	NotRequested           // a code was checked but none is pending
	WrongCode              // the code was wrong: AttemptsLeft remain
	TooManyAttempts        // the last allowed wrong code: the code is void
	Expired                // the code is past its TTL
	DeliverySent           // delivery report: the provider sent the text
	DeliveryDone           // delivery report: the phone got it
	DeliveryFailed         // delivery report: it will not arrive (ErrorCode says why)
	DevText                // development mode: a text that was printed, not sent
	ConfirmFailed          // the number is verified, but the confirmation text failed
	DeliveryLate           // no delivery was reported for the text in time: offer another channel
	CheckFailed            // the code engine could not check the code now; it stays pending
	LinkLive               // a tap-to-verify link that works
	LinkUsed               // a tap-to-verify link that was used, has expired or was replaced
	LinkInvalid            // not a link this server made
	AppSetup               // an authenticator app key, to scan (AppURL) or type (AppSecret)
	AppAdded               // the authenticator app gave its first right code: it is enrolled
	AppRemoved             // the authenticator app is removed
	AppNotSet              // the number has no authenticator app
	AppNotAllowed          // adding or removing an app needs a fresh verification by another channel on this connection
	AppAlreadySet          // the number already has an authenticator app: remove it first
	AppWrongCode           // the code from the app being added was wrong
)

var kindNames = [...]string{"", "code_sent", "verified", "invalid_phone", "number_rejected",
	"country_not_allowed", "already_verified", "already_requested", "code_pending", "nothing_pending",
	"rate_limited", "locked", "send_failed", "send_uncertain", "not_requested", "wrong_code", "too_many_attempts", "expired",
	"delivery_sent", "delivery_done", "delivery_failed", "dev_text", "confirm_failed", "delivery_late", "check_failed",
	"link_live", "link_used", "link_invalid", "app_setup", "app_added", "app_removed", "app_not_set", "app_not_allowed",
	"app_already_set", "app_wrong_code"}

// String names the kind for logs and metrics.
func (k Kind) String() string {
	if int(k) < len(kindNames) {
		return kindNames[k]
	}
	return "unknown"
}

// Outcome is one decision of the rules and the facts that go with it.
// Which fields are set depends on the Kind.
type Outcome struct {
	Kind         Kind
	Phone        string        // E.164
	Channel      string        // how the code travels (CodeSent)
	ExpiresIn    time.Duration // until the pending code dies
	ResendIn     time.Duration // until a new code may be sent
	CodeLength   int
	AttemptsLeft int
	RetryAfter   time.Duration // RateLimited
	Country      string        // ISO 3166 (CountryNotAllowed)
	VerifiedAt   time.Time     // Verified
	Token        string        // Verified, to the connection that typed the code only
	Status       string        // the provider's delivery status (Delivery*)
	ErrorCode    string        // the provider's error code (DeliveryFailed)
	Body         string        // DevText
	Code         string        // CodeSent by the inbound channel: the code the person texts to SendTo
	SendTo       string        // CodeSent by the inbound channel: the number to text (E.164)
	Site         string        // Link*, Verified by a link: the host whose page asked ("" for the server's own)
	AppURL       string        // AppSetup: the otpauth:// URL the QR code carries
	AppSecret    string        // AppSetup: the key, for typing in (base32)
}

// ErrUnknownChannel means register named a channel this server does not
// offer.
var ErrUnknownChannel = errors.New("unknown channel")
