package main

import (
	"errors"
	"testing"
)

func TestRolesAndRetentionAreReadOrRefusedByName(t *testing.T) {
	all, err := parseRoles("")
	if err != nil || all.String() != "ingest,scheduler,web" {
		t.Errorf("no roles = %v (%v), want all three", all, err)
	}
	some, err := parseRoles(" Ingest , web")
	if err != nil || some.String() != "ingest,web" {
		t.Errorf("ingest,web = %v (%v)", some, err)
	}
	if _, err := parseRoles("ingest,cron"); !errors.Is(err, errUsage) {
		t.Errorf("an unknown role: %v, want a usage error naming it", err)
	}
	for text, want := range map[string]int{"": 0, "0": 0, " 6 ": 6} {
		if got, err := parseRetention(text); err != nil || got != want {
			t.Errorf("retention %q = %d (%v), want %d", text, got, err, want)
		}
	}
	for _, bad := range []string{"-1", "six", "1.5"} {
		if _, err := parseRetention(bad); !errors.Is(err, errUsage) {
			t.Errorf("retention %q: %v, want a usage error", bad, err)
		}
	}
}
