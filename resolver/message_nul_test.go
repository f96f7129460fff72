package resolver_test

import (
	"strings"
	"testing"

	"github.com/knit-cdp/knit/resolver"
)

func TestNULInPropertiesAndTraitsIsReplaced(t *testing.T) {
	m, err := resolver.ParseMessage([]byte(`{"type":"identify","userId":"u","messageId":"m",
		"traits":{"na\u0000me":"a\u0000b","list":["x\u0000"]},
		"properties":{"p":{"q":"\u0000"}}}`), resolver.Envelope{Source: "t"})
	if err != nil {
		t.Fatal(err)
	}
	if got := m.PropertiesJSON(); strings.Contains(got, `\u0000`) {
		t.Errorf("properties %s still hold a NUL", got)
	}
	if m.Traits["na\uFFFDme"] != "a\uFFFDb" {
		t.Errorf("traits %v, want NUL replaced in keys and values", m.Traits)
	}
	if list, _ := m.Traits["list"].([]any); len(list) != 1 || list[0] != "x\uFFFD" {
		t.Errorf("trait list %v", m.Traits["list"])
	}
}
