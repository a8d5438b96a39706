package sms

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"time"

	"github.com/twilio/twilio-go/client"
	api "github.com/twilio/twilio-go/rest/api/v2010"

	"verifier/channel"
	"verifier/verify"
)

// TwilioConfig holds the credentials and where to send.
type TwilioConfig struct {
	AccountSID          string
	AuthToken           string
	From                string // a Twilio number, or
	MessagingServiceSID string // a messaging service
	APIURL              string // base URL replacing https://api.twilio.com ("" keeps it)
	StatusCallback      string // URL for delivery status callbacks, "" for none
	Timeout             time.Duration
	ValidFor            time.Duration // Twilio drops a text still queued after this
}

// Twilio sends texts through Twilio's Messages API.
type Twilio struct {
	api *api.ApiService
	cfg TwilioConfig
}

var _ channel.Sender = (*Twilio)(nil)

// NewTwilio checks the configuration and builds the client.
func NewTwilio(cfg TwilioConfig) (*Twilio, error) {
	if cfg.AccountSID == "" || cfg.AuthToken == "" {
		return nil, errors.New("twilio: account SID and auth token are required")
	}
	if cfg.From == "" && cfg.MessagingServiceSID == "" {
		return nil, errors.New("twilio: set TWILIO_FROM_NUMBER or TWILIO_MESSAGING_SERVICE_SID")
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = 5 * time.Second
	}
	c := &client.Client{
		Credentials: client.NewCredentials(cfg.AccountSID, cfg.AuthToken),
		HTTPClient: &http.Client{
			Timeout: cfg.Timeout,
			// Enough idle connections for a burst of sign-ups: the default
			// keeps two, and the rest are torn down after each text.
			Transport: &http.Transport{
				Proxy:               http.ProxyFromEnvironment,
				MaxIdleConns:        256,
				MaxIdleConnsPerHost: 256,
				IdleConnTimeout:     90 * time.Second,
				TLSHandshakeTimeout: 10 * time.Second,
				ForceAttemptHTTP2:   true,
			},
			// Twilio's own client does not follow redirects either.
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		},
	}
	// Without it the SDK posts to /Accounts//Messages.json.
	c.SetAccountSid(cfg.AccountSID)
	var base client.BaseClient = c
	if cfg.APIURL != "" {
		u, err := url.Parse(cfg.APIURL)
		if err != nil || u.Scheme == "" || u.Host == "" {
			return nil, fmt.Errorf("twilio: TWILIO_API_URL %q is not an absolute URL", cfg.APIURL)
		}
		base = rebased{Client: c, base: u}
	}
	return &Twilio{api: api.NewApiServiceWithClient(base), cfg: cfg}, nil
}

// rebased sends every request to another scheme and host: the SDK's base
// URLs are constants, and this is its own injection point.
type rebased struct {
	*client.Client
	base *url.URL
}

func (r rebased) SendRequest(method, rawURL string, data url.Values, headers map[string]any, body ...byte) (*http.Response, error) {
	u, err := url.Parse(rawURL)
	if err != nil {
		return nil, err
	}
	u.Scheme, u.Host = r.base.Scheme, r.base.Host
	u.Path = r.base.Path + u.Path
	return r.Client.SendRequest(method, u.String(), data, headers, body...)
}

// rejectedCodes are Twilio errors about the number itself.
var rejectedCodes = map[int]bool{
	21211: true, // invalid To number
	21214: true, // To number cannot be reached
	21217: true, // number does not appear to be valid
	21401: true, // invalid phone number
	21407: true, // number not supported
	21408: true, // region not enabled
	21421: true, // invalid phone number
	21610: true, // recipient replied STOP
	21612: true, // cannot route to this number
	21614: true, // not a mobile number
}

// Send posts the message. The SDK takes no context; the HTTP client's
// timeout bounds the call.
func (t *Twilio) Send(_ context.Context, text channel.Text) error {
	params := &api.CreateMessageParams{}
	params.SetTo(text.To).SetBody(text.Body)
	if t.cfg.MessagingServiceSID != "" {
		params.SetMessagingServiceSid(t.cfg.MessagingServiceSID)
	} else {
		params.SetFrom(t.cfg.From)
	}
	if t.cfg.StatusCallback != "" {
		params.SetStatusCallback(t.cfg.StatusCallback)
	}
	if secs := int(t.cfg.ValidFor / time.Second); secs > 0 {
		params.SetValidityPeriod(min(secs, 36000))
	}
	_, err := t.api.CreateMessage(params)
	return classify(err)
}

// classify says what a failed request proves. Twilio's own 4xx answers,
// and the client's checks before any request, mean nothing was sent; so
// does a connection that was never made. A timeout, a 5xx or a connection
// cut mid-request may have sent the text.
func classify(err error) error {
	if err == nil {
		return nil
	}
	if restErr, ok := errors.AsType[*client.TwilioRestError](err); ok {
		switch {
		case rejectedCodes[restErr.Code]:
			return fmt.Errorf("twilio %d: %w: %w", restErr.Code, verify.ErrRejectedNumber, restErr)
		case restErr.Status >= 400 && restErr.Status < 500:
			return fmt.Errorf("twilio %d: %w: %w", restErr.Code, verify.ErrNotSent, restErr)
		}
	}
	if opErr, ok := errors.AsType[*net.OpError](err); ok && opErr.Op == "dial" {
		return fmt.Errorf("twilio: %w: %w", verify.ErrNotSent, err)
	}
	return fmt.Errorf("twilio: %w", err)
}

// ErrorCode names a send's failure for metrics: "" for none, Twilio's error
// code when it gave one, "timeout" or "error" otherwise.
func ErrorCode(err error) string {
	if err == nil {
		return ""
	}
	if restErr, ok := errors.AsType[*client.TwilioRestError](err); ok {
		return strconv.Itoa(restErr.Code)
	}
	if netErr, ok := errors.AsType[net.Error](err); ok && netErr.Timeout() {
		return "timeout"
	}
	return "error"
}

// NewStatusValidator checks Twilio's X-Twilio-Signature on webhooks
// signed with authToken.
func NewStatusValidator(authToken string) *client.RequestValidator {
	v := client.NewRequestValidator(authToken)
	return &v
}
