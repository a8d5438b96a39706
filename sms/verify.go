package sms

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/twilio/twilio-go/client"
	verifyv2 "github.com/twilio/twilio-go/rest/verify/v2"

	"verifier/verify"
)

// Verify makes, sends and checks codes with Twilio Verify, through
// twilio-go's verify/v2 client on the Twilio client's connections and
// credentials. The server keeps no secret for these codes.
type Verify struct {
	t       *Twilio
	service string   // the Verify service (VA...)
	base    *url.URL // replaces https://verify.twilio.com; nil keeps it
}

var _ verify.Engine = (*Verify)(nil)

// Verify returns the code engine of the configured Verify service.
func (t *Twilio) Verify() (*Verify, error) {
	if !alphanumeric(t.cfg.VerifyServiceSID) || t.cfg.VerifyServiceSID == "" {
		return nil, fmt.Errorf("twilio: TWILIO_VERIFY_SERVICE_SID %q: want a service SID (VA...)", t.cfg.VerifyServiceSID)
	}
	v := &Verify{t: t, service: t.cfg.VerifyServiceSID}
	if t.cfg.APIURL != "" {
		v.base, _ = url.Parse(t.cfg.APIURL) // NewTwilio checked it
	}
	return v, nil
}

// Channel delivers by Verify's channel of that name (sms, call, whatsapp):
// Verify words the message, in the person's language where it has it.
func (v *Verify) Channel(name string) verify.Channel { return verifyChannel{v, name} }

type verifyChannel struct {
	v    *Verify
	name string
}

func (c verifyChannel) Deliver(ctx context.Context, d verify.Delivery) error {
	params := (&verifyv2.CreateVerificationParams{}).SetTo(d.To).SetChannel(c.name)
	if d.Lang != "" {
		params.SetLocale(d.Lang)
	}
	_, err := c.v.api(ctx).CreateVerification(c.v.service, params)
	return classifyStart(err)
}

// Check asks Verify whether code is the number's pending code.
func (v *Verify) Check(ctx context.Context, to, code string) (bool, error) {
	params := (&verifyv2.CreateVerificationCheckParams{}).SetTo(to).SetCode(code)
	res, err := v.api(ctx).CreateVerificationCheck(v.service, params)
	if err != nil {
		return false, classifyCheck(err)
	}
	status := ""
	if res.Status != nil {
		status = *res.Status
	}
	switch status {
	case "approved":
		return true, nil
	case "pending":
		return false, nil
	case "max_attempts_reached":
		return false, verify.ErrChecksExhausted
	case "expired", "canceled", "deleted":
		return false, verify.ErrNoCode
	}
	return false, fmt.Errorf("twilio verify: check status %q", status)
}

// api is the SDK's Verify client for one call: the SDK takes no context,
// so each call gets a requester that carries its own.
func (v *Verify) api(ctx context.Context) *verifyv2.ApiService {
	return verifyv2.NewApiServiceWithClient(requester{v, ctx})
}

// requester is the SDK's injection point (client.BaseClient): it sends
// the SDK's requests through Twilio.do, to TWILIO_API_URL when set.
type requester struct {
	v   *Verify
	ctx context.Context
}

func (r requester) AccountSid() string       { return r.v.t.cfg.AccountSID }
func (r requester) SetTimeout(time.Duration) {} // the Twilio client's timeout applies
func (r requester) SetOauth(client.OAuth)    {}
func (r requester) OAuth() client.OAuth      { return nil }
func (r requester) SendRequest(method, rawURL string, data url.Values, _ map[string]any, _ ...byte) (*http.Response, error) {
	u, err := url.Parse(rawURL)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", verify.ErrNotSent, err)
	}
	if b := r.v.base; b != nil {
		u.Scheme, u.Host, u.Path = b.Scheme, b.Host, strings.TrimRight(b.Path, "/")+u.Path
	}
	return r.v.t.do(r.ctx, method, u.String(), data)
}

// Verify's own error codes for a send.
const (
	verifyInvalidParameter = 60200 // Verify's word for a To that is no number
	verifyMaxChecks        = 60202
	verifyMaxSends         = 60203
	verifyLandline         = 60205 // SMS is not supported by landline phone number
	verifyBlockedPrefix    = 60410 // the number's prefix is blocked for fraud
	notFound               = 20404 // no pending verification: expired, used or never made
)

// classifyStart says what a failed CreateVerification proves.
func classifyStart(err error) error {
	restErr, ok := errors.AsType[*client.TwilioRestError](err)
	switch {
	case err == nil:
		return nil
	case ok && (restErr.Code == verifyInvalidParameter || restErr.Code == verifyLandline || restErr.Code == verifyBlockedPrefix):
		return fmt.Errorf("twilio verify %d: %w: %w", restErr.Code, verify.ErrRejectedNumber, restErr)
	case ok && restErr.Code == verifyMaxSends:
		return fmt.Errorf("twilio verify %d: %w: %w", restErr.Code, verify.ErrSendsExhausted, restErr)
	}
	return classify(err)
}

// classifyCheck says what a failed VerificationCheck means.
func classifyCheck(err error) error {
	if restErr, ok := errors.AsType[*client.TwilioRestError](err); ok {
		switch restErr.Code {
		case notFound:
			return fmt.Errorf("twilio verify %d: %w: %w", restErr.Code, verify.ErrNoCode, restErr)
		case verifyMaxChecks:
			return fmt.Errorf("twilio verify %d: %w: %w", restErr.Code, verify.ErrChecksExhausted, restErr)
		}
	}
	return fmt.Errorf("twilio verify: check: %w", err)
}
