package webhook

import (
	"crypto/hmac"
	"crypto/sha1"
	"encoding/hex"
	"strings"

	"github.com/knit-cdp/knit/resolver"
)

// Signature returns the hex HMAC-SHA1 of payload under secret, as Segment's
// Webhooks destination computes X-Signature.
func Signature(secret string, payload []byte) string {
	mac := hmac.New(sha1.New, []byte(secret))
	mac.Write(payload)
	return hex.EncodeToString(mac.Sum(nil))
}

// verifySignature checks header against the HMAC of signed, comparing in
// constant time. signed is the raw body for a single message and the raw
// bytes of the first element for an array (array set), which is all
// Segment signs; a mismatch says which of the two was checked.
func verifySignature(secret, header string, signed []byte, array bool) error {
	header = strings.TrimSpace(header)
	if header == "" {
		return resolver.Errorf(resolver.EUnauthorized,
			"X-Signature header is missing; this endpoint has a shared secret")
	}

	given, err := hex.DecodeString(strings.ToLower(header))
	if err != nil {
		return resolver.Errorf(resolver.EUnauthorized, "X-Signature is not hex")
	}
	mac := hmac.New(sha1.New, []byte(secret))
	mac.Write(signed)
	if !hmac.Equal(given, mac.Sum(nil)) {
		checked := "the body"
		if array {
			checked = "the array's first element (all that Segment signs of a batch)"
		}
		return resolver.Errorf(resolver.EUnauthorized,
			"X-Signature does not match %s and the shared secret", checked)
	}
	return nil
}
