package web_test

import (
	"encoding/json"
	"net/http"
	"testing"

	"github.com/knit-cdp/knit/resolver/sqldb/sqltest"
)

func TestUnknownRoutesAndMethodsAnswerJSON(t *testing.T) {
	server := mustSite(t, sqltest.MustOpen(t), "token-a")
	cases := []struct {
		method, path string
		status       int
		code         string
	}{
		{http.MethodGet, "/nowhere", http.StatusNotFound, "not_found"},
		{http.MethodDelete, "/healthz", http.StatusMethodNotAllowed, "method_not_allowed"},
		{http.MethodHead, "/healthz", http.StatusOK, ""},
	}
	for _, tc := range cases {
		req, _ := http.NewRequest(tc.method, server.URL+tc.path, nil)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		var body struct {
			Error struct {
				Code string `json:"code"`
			} `json:"error"`
		}
		_ = json.NewDecoder(resp.Body).Decode(&body)
		resp.Body.Close()
		if resp.StatusCode != tc.status || body.Error.Code != tc.code {
			t.Errorf("%s %s: %d %q, want %d %q", tc.method, tc.path,
				resp.StatusCode, body.Error.Code, tc.status, tc.code)
		}
	}
}
