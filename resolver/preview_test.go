package resolver_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/knit-cdp/knit/resolver"
	"github.com/knit-cdp/knit/resolver/sqldb/sqltest"
)

func TestPreviewReportsMergesAndSplitsWithoutChangingAnything(t *testing.T) {
	db, store := mustResolverStore(t)
	mustIngestEach(t, store,
		// Two people on one tablet, fused by its device id...
		`{"type":"track","messageId":"m1","anonymousId":"a1","event":"E",`+
			`"context":{"device":{"id":"tablet","type":"ios"}}}`,
		`{"type":"track","messageId":"m2","anonymousId":"a2","event":"E",`+
			`"context":{"device":{"id":"tablet","type":"ios"}}}`,
		// ...and one person kept apart by a limit of one phone.
		`{"type":"identify","messageId":"m3","userId":"u1","traits":{"phone":"+33 6 12 34 56 78"}}`,
		`{"type":"identify","messageId":"m4","anonymousId":"a9","traits":{"phone":"+33612345678"}}`)
	before := mustIdentities(t, db)

	rules := resolver.DefaultRules()
	rules.BlockedByType["ios.id"] = []string{"tablet"}
	rules.Custom = []resolver.CustomType{{Type: "phone", Keys: []string{"phone"},
		Normaliser: "phone"}}
	clock := func() time.Time { return time.Date(2026, 12, 4, 0, 0, 0, 0, time.UTC) }
	report, err := resolver.Preview(context.Background(), db, sqltest.MustOpen(t), rules, clock)
	if err != nil {
		t.Fatal(err)
	}

	if report.Messages != 4 || report.Splits != 1 || report.Merges != 1 {
		t.Errorf("report %+v, want 4 messages, 1 split, 1 merge", report)
	}
	if len(report.SplitExamples) != 1 || !strings.Contains(report.SplitExamples[0],
		"{anonymous_id:a1} + {anonymous_id:a2}") {
		t.Errorf("split examples %q", report.SplitExamples)
	}
	if len(report.MergeExamples) != 1 || !strings.Contains(report.MergeExamples[0],
		"{anonymous_id:a9} + {user_id:u1}") {
		t.Errorf("merge examples %q", report.MergeExamples)
	}
	if report.Dropped != 1 || report.Added != 1 {
		t.Errorf("dropped %d (the tablet), added %d (the phone)", report.Dropped, report.Added)
	}
	if after := mustIdentities(t, db); len(after) != len(before) {
		t.Errorf("preview changed the graph: %v -> %v", before, after)
	}
}
