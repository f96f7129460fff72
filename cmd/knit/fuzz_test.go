package main

import (
	"os"
	"path/filepath"
	"testing"
)

// FuzzLoadSettings: any file either loads into settings that validate or
// is refused with an error; nothing panics.
func FuzzLoadSettings(f *testing.F) {
	for _, seed := range []string{
		"", "identity:\n  default_limit: 0\n",
		"audiences:\n  - name: x\n    condition: {performed: {event: A, within: 7d}}\n",
		"audiences:\n  - name: x\n    schedule: CRON_TZ=Europe/Paris\n",
		"audiences:\n  - name: a\n    condition: {in_audience: a}\n",
		"identity:\n  types:\n    phone: {keys: [phone], normaliser: phone}\n",
		"identity:\n  blocked: [\"/(/\"]\n", "[1, 2", "audiences: 5",
	} {
		f.Add([]byte(seed))
	}
	dir := f.TempDir()
	f.Fuzz(func(t *testing.T, data []byte) {
		path := filepath.Join(dir, "knit.yaml")
		if err := os.WriteFile(path, data, 0o600); err != nil {
			t.Fatal(err)
		}
		got, err := loadSettings(path)
		if err != nil {
			return
		}
		if err := got.Rules.Validate(); err != nil {
			t.Fatalf("loaded rules that do not validate: %v\n%s", err, data)
		}
	})
}
