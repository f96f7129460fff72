package resolver

import (
	"context"
	"fmt"

	"github.com/jmoiron/sqlx"

	"github.com/knit-cdp/knit/resolver/sqldb"
)

// prefetch reads, before a batch is resolved, what its messages will ask
// about: which of their message ids are stored or erased already, who holds
// their identifiers and every identifier of those holders. A batch then
// costs a few reads in all instead of several a message.
func (w *writer) prefetch(ctx context.Context, messages []*Message) error {
	ids := make([]string, 0, len(messages))
	var identifiers []Identifier
	seen := map[Identifier]bool{}
	for _, m := range messages {
		ids = append(ids, m.ID)
		extracted, _ := w.extracted(m)
		for _, id := range extracted {
			if !seen[id] {
				seen[id] = true
				identifiers = append(identifiers, id)
			}
		}
	}

	if err := w.readKnownMessages(ctx, ids); err != nil {
		return err
	}
	owners, err := w.owners(ctx, identifiers)
	if err != nil {
		return err
	}
	_, err = w.identifiersOf(ctx, distinctProfiles(owners))
	return err
}

// messageChunk bounds the message ids one duplicate check names.
const messageChunk = 500

// readKnownMessages fills w.known with the batch's message ids that are
// stored or were erased. On PostgreSQL event_ids holds every stored id
// once, with no partitions to visit.
func (w *writer) readKnownMessages(ctx context.Context, ids []string) error {
	stored := "events"
	if w.dialect == sqldb.Postgres {
		stored = "event_ids"
	}
	w.known = make(map[string]bool, len(ids))
	for start := 0; start < len(ids); start += messageChunk {
		chunk := ids[start:min(start+messageChunk, len(ids))]
		query, args, err := sqlx.In(`SELECT message_id FROM `+stored+
			` WHERE message_id IN (?) UNION ALL
			SELECT message_id FROM erased_messages WHERE message_id IN (?)`, chunk, chunk)
		if err != nil {
			return fmt.Errorf("build duplicate check: %w", err)
		}
		var found []string
		if err := w.tx.SelectContext(ctx, &found, w.tx.Rebind(query), args...); err != nil {
			return fmt.Errorf("check duplicates: %w", err)
		}
		for _, id := range found {
			w.known[id] = true
		}
	}
	return nil
}
