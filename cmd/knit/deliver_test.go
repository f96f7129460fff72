package main

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/knit-cdp/knit/audiences"
)

func TestHTTPSenderPostsTheMessageAndReportsTheStatus(t *testing.T) {
	var gotBody, gotSignature string
	receiver := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		gotBody, gotSignature = string(body), r.Header.Get("X-Signature")
		w.WriteHeader(http.StatusAccepted)
	}))
	defer receiver.Close()

	sender := httpSender{client: &http.Client{Timeout: 5 * time.Second}}
	status, err := sender.Send(context.Background(), audiences.Request{URL: receiver.URL,
		Headers: map[string]string{"X-Signature": "abc"}, Body: []byte(`{"type":"identify"}`)})
	if err != nil || status != http.StatusAccepted || gotBody != `{"type":"identify"}` ||
		gotSignature != "abc" {
		t.Errorf("status %d err %v body %q signature %q", status, err, gotBody, gotSignature)
	}

	receiver.Close()
	if _, err := sender.Send(context.Background(), audiences.Request{URL: receiver.URL}); err == nil {
		t.Error("a receiver that is gone gave no error")
	}
}
