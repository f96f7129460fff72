package webhook

import (
	"strings"
	"testing"
)

// FuzzVerifySignature: only the HMAC of exactly the signed bytes under the
// secret passes (in any case of hex, with spaces around); nothing panics.
func FuzzVerifySignature(f *testing.F) {
	f.Add("secret", "", []byte(`{"type":"track"}`))
	f.Add("secret", "zz", []byte(`{}`))
	f.Add("", "00", []byte(nil))
	f.Fuzz(func(t *testing.T, secret, header string, signed []byte) {
		good := Signature(secret, signed)
		if err := verifySignature(secret, header, signed, false); err == nil &&
			strings.ToLower(strings.TrimSpace(header)) != good {
			t.Fatalf("header %q passes for %q under %q", header, signed, secret)
		}
		if err := verifySignature(secret, " "+strings.ToUpper(good)+" ", signed, false); err != nil {
			t.Fatalf("the true signature fails: %v", err)
		}
		if err := verifySignature(secret+"x", good, signed, false); err == nil {
			t.Fatalf("another secret passes for %q", signed)
		}
	})
}
