package resolver_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/knit-cdp/knit/resolver"
	"github.com/knit-cdp/knit/resolver/sqldb/sqltest"
)

func TestMessageWithHundredsOfExternalIDsIsStored(t *testing.T) {
	db, store := mustResolverStore(t)

	var ids []string
	for i := range 999 {
		ids = append(ids, fmt.Sprintf(`{"id":"%d","type":"a"}`, i))
	}
	crowded := `{"type":"track","messageId":"crowded","userId":"u1","event":"E",` +
		`"context":{"externalIds":[` + strings.Join(ids, ",") + `]}}`
	plain := `{"type":"track","messageId":"plain","userId":"u2","event":"E"}`

	batch := []*resolver.Message{mustParseMessage(t, crowded), mustParseMessage(t, plain)}
	if _, err := store.Ingest(context.Background(), batch); err != nil {
		t.Fatalf("ingest: %v", err)
	}
	profiles := mustEventProfiles(t, db)
	if profiles["crowded"] == 0 || profiles["plain"] == 0 {
		t.Errorf("event profiles %v, want both messages on profiles", profiles)
	}
	for profile, held := range mustIdentities(t, db) {
		if count := strings.Count(strings.Join(held, " "), "a:"); count > 5 {
			t.Errorf("profile %d holds %d values of type a, over the limit of 5", profile, count)
		}
	}
}

func TestProfileOverAStricterLimitStillTakesItsMessages(t *testing.T) {
	db := sqltest.MustOpen(t)
	clock := func() time.Time { return time.Date(2026, 12, 4, 0, 0, 0, 0, time.UTC) }
	loose := resolver.DefaultRules()
	mustIngestEach(t, resolver.NewStore(db, loose, clock, nil),
		`{"type":"identify","messageId":"m1","userId":"u1","anonymousId":"a1"}`,
		`{"type":"identify","messageId":"m2","userId":"u1","anonymousId":"a2"}`,
		`{"type":"identify","messageId":"m3","userId":"u1","anonymousId":"a3"}`)

	strict := resolver.DefaultRules()
	strict.Limits["anonymous_id"] = 2
	store := resolver.NewStore(db, strict, clock, nil)
	mustIngestEach(t, store,
		`{"type":"track","messageId":"again","userId":"u1","anonymousId":"a2","event":"E"}`,
		`{"type":"track","messageId":"fourth","userId":"u1","anonymousId":"a4","event":"E"}`)

	profiles := mustEventProfiles(t, db)
	if profiles["again"] != profiles["m1"] || profiles["fourth"] != profiles["m1"] {
		t.Errorf("event profiles %v: later messages should land on u1's profile", profiles)
	}
	for _, held := range mustIdentities(t, db) {
		if strings.Contains(strings.Join(held, " "), "anonymous_id:a4") {
			t.Errorf("a4 was attached to a profile already over the stricter limit: %v", held)
		}
	}
}

func TestMessageIDLimitCountsCharacters(t *testing.T) {
	env := resolver.Envelope{Source: "test", ReceivedAt: time.Now()}
	message := func(id string) []byte {
		return []byte(`{"type":"track","userId":"u1","event":"E","messageId":"` + id + `"}`)
	}
	if _, err := resolver.ParseMessage(message(strings.Repeat("é", 100)), env); err != nil {
		t.Errorf("a 100-character messageId of 200 bytes was refused: %v", err)
	}
	_, err := resolver.ParseMessage(message(strings.Repeat("é", 101)), env)
	if resolver.ErrorCode(err) != resolver.EInvalid ||
		!strings.Contains(err.Error(), "101 characters") {
		t.Errorf("a 101-character messageId: %v, want invalid naming 101 characters", err)
	}
}
