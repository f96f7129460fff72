package resolver

import (
	"context"
	"testing"
	"time"

	"github.com/jmoiron/sqlx"

	"github.com/knit-cdp/knit/resolver/sqldb/sqltest"
)

// A merge stores the profiles, identities and traits waiting in the batch
// and nothing else: the batch's events, links and decisions wait, in their
// order, for the end of the batch.
func TestFlushTablesWritesOnlyTheTablesNamed(t *testing.T) {
	db := sqltest.MustOpen(t)
	ctx := context.Background()
	now := time.Date(2026, 12, 5, 12, 0, 0, 0, time.UTC).UnixMilli()

	err := db.WithWriteTx(ctx, func(tx *sqlx.Tx) error {
		w := &writer{tx: tx, rules: DefaultRules(), bulk: newBulkRows(),
			cache: newIdentityCache(), dialect: db.Dialect()}
		must := func(err error) {
			t.Helper()
			if err != nil {
				t.Fatal(err)
			}
		}
		must(w.write(ctx, &bulkProfiles, int64(1), now, now))
		must(w.addIdentity(ctx, "user_id", "jane", int64(1), now, now, "m1", "test", "", ""))
		must(w.write(ctx, &bulkEvents, int64(1), "m1", "test", "identify", "", "jane", "",
			int64(1), now, now, "", "", "", "{}", "{}"))
		must(w.write(ctx, &bulkLinks, int64(1), "user_id", "jane", "m1"))
		must(w.setTrait(ctx, int64(1), "plan", `"pro"`, now, "m1"))

		must(w.flushTables(ctx, &bulkProfiles, &bulkIdentities, &bulkTraits))

		var stored struct{ Profiles, Identities, Traits, Events, Links int }
		must(tx.QueryRowxContext(ctx, `SELECT (SELECT COUNT(*) FROM profiles),
			(SELECT COUNT(*) FROM identities), (SELECT COUNT(*) FROM traits),
			(SELECT COUNT(*) FROM events), (SELECT COUNT(*) FROM identity_links)`).Scan(
			&stored.Profiles, &stored.Identities, &stored.Traits, &stored.Events,
			&stored.Links))
		if stored != (struct{ Profiles, Identities, Traits, Events, Links int }{
			1, 1, 1, 0, 0}) {
			t.Errorf("stored after the partial flush: %+v", stored)
		}
		if len(w.bulk.order) != 2 || w.bulk.order[0] != &bulkEvents ||
			w.bulk.order[1] != &bulkLinks || len(w.bulk.identities) != 0 ||
			len(w.bulk.traits) != 0 {
			t.Errorf("waiting after the partial flush: %d tables, %d identities, %d traits",
				len(w.bulk.order), len(w.bulk.identities), len(w.bulk.traits))
		}

		must(w.flush(ctx))
		must(tx.QueryRowxContext(ctx, `SELECT (SELECT COUNT(*) FROM events),
			(SELECT COUNT(*) FROM identity_links)`).Scan(&stored.Events, &stored.Links))
		if stored.Events != 1 || stored.Links != 1 || len(w.bulk.order) != 0 {
			t.Errorf("after the whole flush: %d events, %d links, %d tables waiting",
				stored.Events, stored.Links, len(w.bulk.order))
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}
