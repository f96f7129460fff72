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
// costs a few reads in all instead of several a message. What ahead read
// for the batch while prev was committing is taken instead where it still
// holds (readAhead), so only the rest is read here.
func (w *writer) prefetch(ctx context.Context, messages []*Message,
	ahead *readAhead, prev *groupTrace) error {
	ids, identifiers := w.batchKeys(messages)

	if err := w.readStart(ctx); err != nil {
		return err
	}
	w.readAheadUsed = w.useReadAhead(ahead, prev)
	if !w.readAheadUsed {
		if err := w.readKnownMessages(ctx, ids); err != nil {
			return err
		}
	}
	owners, err := w.owners(ctx, identifiers)
	if err != nil {
		return err
	}
	_, err = w.identifiersOf(ctx, distinctProfiles(owners))
	return err
}

// useReadAhead seeds the transaction with ahead, when ahead was read in
// full and no other writer committed since prev, and says whether it did.
func (w *writer) useReadAhead(ahead *readAhead, prev *groupTrace) bool {
	if ahead == nil || !prev.trusts(w) {
		return false
	}
	<-ahead.done
	if ahead.err != nil {
		return false
	}
	w.seed(ahead, prev)
	return true
}

// batchKeys returns the messages' ids, and their identifiers once each.
func (w *writer) batchKeys(messages []*Message) ([]string, []Identifier) {
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
	return ids, identifiers
}

// readStart reads in one statement what a batch's first messages would
// each read alone: the highest profile and event ids, and whether any
// identifier is unlinked; and the write generation, for useReadAhead.
// Three round trips a transaction were a tenth of a batch's on
// PostgreSQL.
func (w *writer) readStart(ctx context.Context) error {
	var start struct {
		Profiles   int64 `db:"profiles"`
		Events     int64 `db:"events"`
		Blocks     int64 `db:"blocks"`
		Generation int64 `db:"generation"`
	}
	query := "SELECT (" + profileRows.highest + ") AS profiles, (" +
		eventRows.highest + ") AS events, (" + anyBlocksQuery + ") AS blocks, (" +
		generationSQL + ") AS generation"
	if err := w.tx.GetContext(ctx, &start, query); err != nil {
		return fmt.Errorf("read the highest ids and unlinked identifiers: %w", err)
	}

	// Ids below 1 were put there by hand. The sequences need moving only
	// past ids this transaction hands out.
	w.profileIDs.last = max(start.Profiles, 0)
	w.eventIDs.last = max(start.Events, 0)
	w.profileIDs.written, w.eventIDs.written = w.profileIDs.last, w.eventIDs.last
	blocks := start.Blocks > 0
	w.anyBlocks = &blocks
	w.generation = start.Generation
	return nil
}

// messageChunk bounds the message ids one duplicate check names.
const messageChunk = 500

// readKnownMessages fills w.known with the batch's message ids that are
// stored or were erased. On PostgreSQL event_ids holds every stored id
// once, with no partitions to visit.
func (w *writer) readKnownMessages(ctx context.Context, ids []string) error {
	w.known = make(map[string]bool, len(ids))
	for start := 0; start < len(ids); start += messageChunk {
		chunk := ids[start:min(start+messageChunk, len(ids))]
		query, args, err := knownMessagesQuery(w.dialect, chunk)
		if err != nil {
			return err
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

// knownMessagesQuery selects those of ids that are stored or erased. On
// PostgreSQL each id is a probe of event_ids' and erased_messages' keys
// (OFFSET 0 keeps it so): a plan cached while those tables were small
// would otherwise read them whole.
func knownMessagesQuery(dialect sqldb.Dialect, ids []string) (string, []any, error) {
	if dialect == sqldb.Postgres {
		return `SELECT k.id FROM unnest(CAST(? AS TEXT[])) AS k(id)
			CROSS JOIN LATERAL (SELECT 1 FROM event_ids
				WHERE message_id = k.id OFFSET 0) AS stored
			UNION ALL
			SELECT k.id FROM unnest(CAST(? AS TEXT[])) AS k(id)
			CROSS JOIN LATERAL (SELECT 1 FROM erased_messages
				WHERE message_id = k.id OFFSET 0) AS erased`, []any{ids, ids}, nil
	}
	query, args, err := sqlx.In(`SELECT message_id FROM events WHERE message_id IN (?)
		UNION ALL SELECT message_id FROM erased_messages WHERE message_id IN (?)`, ids, ids)
	if err != nil {
		return "", nil, fmt.Errorf("build duplicate check: %w", err)
	}
	return query, args, nil
}
