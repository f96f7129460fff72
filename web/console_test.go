package web

import "testing"

func TestSafeNextKeepsVisitorsOnThisSite(t *testing.T) {
	cases := []struct {
		next string
		want string
	}{
		{"/people/3", "/people/3"},
		{"/people?q=anon_456", "/people?q=anon_456"},
		{"", "/"},
		{"https://evil.example/", "/"},
		{"//evil.example", "/"},
		{"/\\evil.example", "/"},
		{"/\t/evil.example", "/"},
		{"/\n/evil.example", "/"},
		{"/\r/evil.example", "/"},
		{"/%09/evil.example", "/%09/evil.example"}, // stays a local path
		{"people", "/"},
		{"javascript:alert(1)", "/"},
	}
	for _, tc := range cases {
		if got := safeNext(tc.next); got != tc.want {
			t.Errorf("safeNext(%q) = %q, want %q", tc.next, got, tc.want)
		}
	}
}
