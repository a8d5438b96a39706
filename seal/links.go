package seal

import (
	"encoding/base64"
	"encoding/binary"
	"errors"
	"strconv"
	"strings"
)

// Links makes the ids of tap-to-verify links. An id is the number, sealed:
// only this server can open it or make one, so the id needs no table to
// find its number and cannot be guessed (a forgery must break AES-GCM's
// 128-bit tag). Its nonce is unique to the link: the pending code keeps it,
// so one link works once, for its own code only.
type Links struct {
	box *Box
}

// NewLinks returns the link maker of the server secret.
func NewLinks(secret []byte) (*Links, error) {
	box, err := New(secret, "tap-to-verify link")
	if err != nil {
		return nil, err
	}
	return &Links{box: box}, nil
}

var linkEncoding = base64.RawURLEncoding

// New returns the id of a new link for phone (E.164), and its nonce. The
// number travels as 8 bytes, so the id is 48 characters.
func (l *Links) New(phone string) (id, nonce string, err error) {
	digits, err := strconv.ParseUint(strings.TrimPrefix(phone, "+"), 10, 64)
	if err != nil || !strings.HasPrefix(phone, "+") {
		return "", "", errors.New("seal: link for a number that is not E.164")
	}
	sealed, err := l.box.Seal(binary.BigEndian.AppendUint64(nil, digits))
	if err != nil {
		return "", "", err
	}
	return linkEncoding.EncodeToString(sealed), string(sealed[:l.box.aead.NonceSize()]), nil
}

// Open returns the number and the nonce of a link this server made.
func (l *Links) Open(id string) (phone, nonce string, err error) {
	if len(id) > 64 {
		return "", "", ErrForged
	}
	sealed, err := linkEncoding.DecodeString(id)
	if err != nil {
		return "", "", ErrForged
	}
	plain, err := l.box.Open(sealed)
	if err != nil || len(plain) != 8 {
		return "", "", ErrForged
	}
	return "+" + strconv.FormatUint(binary.BigEndian.Uint64(plain), 10), string(sealed[:l.box.aead.NonceSize()]), nil
}
