package webhook

import (
	"strings"
	"testing"

	"github.com/knit-cdp/knit/resolver"
)

func TestExcerptBlanksSecrets(t *testing.T) {
	h := New(nil, Config{Secret: "sec", WriteKeys: []string{"key1", "key1-long"}}, nil)
	x := func(n int) string { return strings.Repeat("x", n) }
	tests := []struct{ name, data, want string }{
		{"writeKey value", `{"writeKey":"abc","x":1}`, `{"writeKey":"[redacted]","x":1}`},
		{"any case and spacing", `{"WriteKey" : "abc"}`, `{"WriteKey" : "[redacted]"}`},
		{"escaped name", `{"write\u004bey":"abc"}`, `{"write\u004bey":"[redacted]"}`},
		{"escaped quote in the value", `{"writeKey":"a\"b","y":2}`,
			`{"writeKey":"[redacted]","y":2}`},
		{"value cut by the end", `{"writeKey":"abc`, `{"writeKey":"[redacted]"`},
		{"broken JSON around it", `{"a":"b,"writeKey":"abc"}`,
			`{"a":"b,"writeKey":"[redacted]"}`},
		{"the word as a value, a number as the key",
			`{"note":"writeKey","writeKey":1}`, `{"note":"writeKey","writeKey":1}`},
		{"secrets anywhere", `{"a":"key1 and sec and key1-long"}`,
			`{"a":"[redacted] and [redacted] and [redacted]"}`},
		{"a secret whole before the end", x(990) + "key1 more" + x(100),
			x(990) + "[redacted] morex"},
		{"what may start a longer secret at the end", x(995) + "key1-more" + x(100),
			x(995)},
		{"a secret cut by the end", x(997) + "key1" + x(100), x(997)},
		{"a longer secret cut by the end", x(993) + "key1-long" + x(100), x(993)},
		{"the end of a whole text is kept", x(10) + "ke", x(10) + "ke"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := h.excerpt([]byte(tt.data)); got != tt.want {
				t.Errorf("excerpt(%.40q...) = %q,\nwant %q", tt.data, tail(got), tail(tt.want))
			}
		})
	}
}

// tail is the end of a long text, for messages.
func tail(text string) string { return text[max(0, len(text)-60):] }

func TestMessageIDOf(t *testing.T) {
	for data, want := range map[string]string{
		`{"messageId":" m1 "}`: "m1", `{"messageId":42}`: "42", `{"messageId":null}`: "",
		`[{"messageId":"m1"}]`: "", `{"messageId":"m1"`: "", `"m1"`: "", ``: "",
		`  {"type":"track","messageId":"m2"}`: "m2",
	} {
		if got := messageIDOf([]byte(data)); got != want {
			t.Errorf("messageIDOf(%q) = %q, want %q", data, got, want)
		}
	}
	if resolver.MaxExcerptBytes != 1000 {
		t.Errorf("MaxExcerptBytes = %d; the cases above assume 1,000", resolver.MaxExcerptBytes)
	}
}
