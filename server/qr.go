package server

import (
	"bytes"
	"encoding/base64"
	"image/png"

	"github.com/pquerna/otp"
)

// qrSize is the QR code's side in pixels: big enough for a phone camera
// across a desk.
const qrSize = 240

// qrDataURL draws an otpauth:// URL as a QR code, a PNG in a data URL, so
// the key never leaves the server in any other form than to the one
// connection it is for; "" if it cannot.
func qrDataURL(otpauth string) string {
	key, err := otp.NewKeyFromURL(otpauth)
	if err != nil {
		return ""
	}
	img, err := key.Image(qrSize, qrSize)
	if err != nil {
		return ""
	}
	var b bytes.Buffer
	if err := png.Encode(&b, img); err != nil {
		return ""
	}
	return "data:image/png;base64," + base64.StdEncoding.EncodeToString(b.Bytes())
}
