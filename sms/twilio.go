package sms

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/twilio/twilio-go/client"

	"verifier/channel"
	"verifier/verify"
)

// TwilioConfig holds the credentials and where to send.
type TwilioConfig struct {
	AccountSID          string
	AuthToken           string
	From                string // a Twilio number, or
	MessagingServiceSID string // a messaging service
	WhatsAppFrom        string // a WhatsApp sender (whatsapp:+1...); "" offers no WhatsApp
	VerifyServiceSID    string // a Twilio Verify service that makes the codes; "" for ours
	APIURL              string // base URL replacing https://api.twilio.com ("" keeps it)
	StatusCallback      string // URL for delivery status callbacks, "" for none
	Timeout             time.Duration
	ValidFor            time.Duration // Twilio drops a text still queued after this
}

// Twilio sends texts through Twilio's Messages API, and places calls
// through its Calls API. It posts the form
// itself rather than through twilio-go's api.CreateMessage, which decodes
// the whole message into its struct and checks the credentials with
// regular expressions on every call (a sixth of the server's CPU under
// load); it keeps twilio-go's error type and meanings.
type Twilio struct {
	http        *http.Client
	messagesURL string
	callsURL    string
	cfg         TwilioConfig
}

var (
	_ channel.Sender = (*Twilio)(nil)
	_ channel.Caller = (*Twilio)(nil)
)

// twilioConns is how many connections to Twilio are open at most, all kept
// alive between texts, so a burst opens none: more texts at once wait for
// one. It fits the server's reserve of file descriptors beside its sockets.
const twilioConns = 448

// NewTwilio checks the configuration and builds the client.
func NewTwilio(cfg TwilioConfig) (*Twilio, error) {
	if cfg.AccountSID == "" || cfg.AuthToken == "" {
		return nil, errors.New("twilio: account SID and auth token are required")
	}
	if !alphanumeric(cfg.AccountSID) || !alphanumeric(cfg.AuthToken) {
		// twilio-go refuses such credentials on every request (21222, 21224).
		return nil, errors.New("twilio: the account SID and auth token are letters and digits only")
	}
	if cfg.From == "" && cfg.MessagingServiceSID == "" && cfg.VerifyServiceSID == "" {
		return nil, errors.New("twilio: set TWILIO_FROM_NUMBER, TWILIO_MESSAGING_SERVICE_SID or TWILIO_VERIFY_SERVICE_SID")
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = 5 * time.Second
	}
	base := "https://api.twilio.com"
	if cfg.APIURL != "" {
		u, err := url.Parse(cfg.APIURL)
		if err != nil || u.Scheme == "" || u.Host == "" {
			return nil, fmt.Errorf("twilio: TWILIO_API_URL %q is not an absolute URL", cfg.APIURL)
		}
		base = strings.TrimRight(cfg.APIURL, "/")
	}
	account := base + "/2010-04-01/Accounts/" + url.PathEscape(cfg.AccountSID)
	return &Twilio{http: newHTTPClient(cfg.Timeout), cfg: cfg,
		messagesURL: account + "/Messages.json", callsURL: account + "/Calls.json"}, nil
}

func newHTTPClient(timeout time.Duration) *http.Client {
	return &http.Client{
		Timeout: timeout,
		Transport: &http.Transport{
			Proxy:               http.ProxyFromEnvironment,
			MaxIdleConns:        twilioConns,
			MaxIdleConnsPerHost: twilioConns,
			MaxConnsPerHost:     twilioConns,
			IdleConnTimeout:     90 * time.Second,
			TLSHandshakeTimeout: 10 * time.Second,
			ForceAttemptHTTP2:   true,
		},
		// Twilio's own client does not follow redirects either.
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
}

func alphanumeric(s string) bool {
	for _, r := range s {
		if !('a' <= r && r <= 'z' || 'A' <= r && r <= 'Z' || '0' <= r && r <= '9') {
			return false
		}
	}
	return true
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

// Send posts the message; ctx and the client's timeout bound the call.
func (t *Twilio) Send(ctx context.Context, text channel.Text) error {
	form := url.Values{"To": {text.To}}
	switch {
	case strings.HasPrefix(text.To, whatsapp):
		form.Set("From", whatsapp+strings.TrimPrefix(t.cfg.WhatsAppFrom, whatsapp))
	case t.cfg.MessagingServiceSID != "":
		form.Set("MessagingServiceSid", t.cfg.MessagingServiceSID)
	default:
		form.Set("From", t.cfg.From)
	}
	if text.ContentSID != "" {
		form.Set("ContentSid", text.ContentSID)
		form.Set("ContentVariables", text.ContentVariables)
	} else {
		form.Set("Body", text.Body)
	}
	if t.cfg.StatusCallback != "" {
		form.Set("StatusCallback", t.cfg.StatusCallback)
	}
	if secs := int(t.cfg.ValidFor / time.Second); secs > 0 {
		form.Set("ValidityPeriod", strconv.Itoa(min(secs, 36000)))
	}
	return classify(t.post(ctx, t.messagesURL, form))
}

// whatsapp prefixes WhatsApp addresses in the Messages API.
const whatsapp = "whatsapp:"

// Call places a voice call that says the TwiML.
func (t *Twilio) Call(ctx context.Context, v channel.Voice) error {
	form := url.Values{"To": {v.To}, "From": {t.cfg.From}, "Twiml": {v.TwiML}}
	return classify(t.post(ctx, t.callsURL, form))
}

// maxAnswer bounds what is read of Twilio's answer.
const maxAnswer = 64 << 10

// post sends the form and reads the answer: nil for 2xx, else Twilio's
// error as twilio-go decodes it (*client.TwilioRestError).
func (t *Twilio) post(ctx context.Context, to string, form url.Values) error {
	res, err := t.do(ctx, http.MethodPost, to, form)
	if err != nil {
		return err
	}
	defer res.Body.Close()
	_, err = io.Copy(io.Discard, io.LimitReader(res.Body, maxAnswer)) // read to the end, so the connection is kept
	return err
}

// do sends the form and returns a 2xx answer for the caller to read and
// close, or Twilio's error.
func (t *Twilio) do(ctx context.Context, method, to string, form url.Values) (*http.Response, error) {
	req, err := http.NewRequestWithContext(ctx, method, to, strings.NewReader(form.Encode()))
	if err != nil {
		return nil, fmt.Errorf("%w: %w", verify.ErrNotSent, err)
	}
	req.SetBasicAuth(t.cfg.AccountSID, t.cfg.AuthToken)
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Accept", "application/json")
	req.Header.Set("User-Agent", userAgent)
	res, err := t.http.Do(req)
	if err != nil {
		return nil, err
	}
	if res.StatusCode >= 200 && res.StatusCode < 300 {
		return res, nil
	}
	defer res.Body.Close()
	restErr := &client.TwilioRestError{}
	if err := json.NewDecoder(io.LimitReader(res.Body, maxAnswer)).Decode(restErr); err != nil {
		// Not Twilio's JSON: the HTTP status says what happened.
		restErr = &client.TwilioRestError{Message: "HTTP " + res.Status}
	}
	if restErr.Status == 0 {
		restErr.Status = res.StatusCode
	}
	return nil, restErr
}

var userAgent = "verifier twilio-go/" + client.LibraryVersion

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
	if restErr, ok := errors.AsType[*client.TwilioRestError](err); ok && restErr.Code != 0 {
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
