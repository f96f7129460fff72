package resolver

import (
	"context"
	"fmt"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/jmoiron/sqlx"
)

// Limits on what is kept of refused messages.
const (
	// MaxExcerptBytes bounds the excerpt kept of a refused message or body.
	MaxExcerptBytes = 1000
	// RejectionRetention is how long a refusal is kept and shown.
	RejectionRetention = 7 * 24 * time.Hour
	// MaxRejections is how many refusals are kept at most, the newest.
	MaxRejections = 10_000

	// pruneEvery is how many recorded refusals pass between prunes by
	// count; expired rows are deleted as soon as any refusal arrives.
	pruneEvery = 100
	// maxLabelBytes bounds the source, endpoint and message id kept.
	maxLabelBytes = 200
)

// Rejection is one message, or whole request, that the ingestion edge
// refused, with the reason it was given.
type Rejection struct {
	ID         int64  `db:"id"`
	ReceivedMS int64  `db:"received_ms"`
	Source     string `db:"source"`   // "webhook", a write key's label, ...
	Endpoint   string `db:"endpoint"` // the request path, such as /v1/batch
	Reason     string `db:"reason"`   // the message the sender was answered
	MessageID  string `db:"message_id"`
	// Excerpt is the start of the refused element or body. The caller
	// removes secrets from it before recording.
	Excerpt string `db:"excerpt"`
}

// ReceivedAt returns when the refused request arrived, in UTC.
func (r Rejection) ReceivedAt() time.Time { return time.UnixMilli(r.ReceivedMS).UTC() }

// RecordRejections stores refusals in one transaction. Every text is kept
// as valid UTF-8 without NUL characters (invalid bytes and NULs become
// U+FFFD), the excerpt and reason cut to MaxExcerptBytes and the labels to
// 200 bytes, at a character boundary. It keeps the table bounded: rows
// older than RejectionRetention are deleted whenever refusals arrive, and
// every 100 rows the table is cut to the newest MaxRejections.
func (s *Store) RecordRejections(ctx context.Context, rejections []Rejection) error {
	if len(rejections) == 0 {
		return nil
	}
	err := s.db.WithTx(ctx, func(tx *sqlx.Tx) error {
		if err := insertRejections(ctx, tx, rejections); err != nil {
			return err
		}
		return pruneRejections(ctx, tx, len(rejections), s.now())
	})
	if err != nil {
		return fmt.Errorf("resolver.RecordRejections: %w", err)
	}
	return nil
}

func insertRejections(ctx context.Context, tx *sqlx.Tx, rejections []Rejection) error {
	stmt, err := tx.PreparexContext(ctx, tx.Rebind(`INSERT INTO rejected_messages
		(received_ms, source, endpoint, reason, message_id, excerpt)
		VALUES (?, ?, ?, ?, ?, ?)`))
	if err != nil {
		return fmt.Errorf("prepare insert rejection: %w", err)
	}
	defer stmt.Close()
	for _, r := range rejections {
		_, err := stmt.ExecContext(ctx, r.ReceivedMS,
			cleanText(r.Source, maxLabelBytes), cleanText(r.Endpoint, maxLabelBytes),
			cleanText(r.Reason, MaxExcerptBytes), cleanText(r.MessageID, maxLabelBytes),
			cleanText(r.Excerpt, MaxExcerptBytes))
		if err != nil {
			return fmt.Errorf("insert rejection: %w", err)
		}
	}
	return nil
}

// pruneRejections deletes expired rows when the oldest row has expired,
// and cuts the table to its newest rows when the last inserted rows
// crossed a multiple of pruneEvery ids. Both checks read one row by key.
// Between cuts the table holds at most MaxRejections rows: a cut keeps
// MaxRejections - pruneEvery, and fewer than pruneEvery follow before the
// next.
func pruneRejections(ctx context.Context, tx *sqlx.Tx, inserted int, now time.Time) error {
	var bounds struct {
		Last   int64 `db:"last"`
		Oldest int64 `db:"oldest"`
	}
	err := tx.GetContext(ctx, &bounds, `SELECT
		(SELECT COALESCE(MAX(id), 0) FROM rejected_messages) AS last,
		COALESCE((SELECT received_ms FROM rejected_messages ORDER BY id LIMIT 1), 0)
			AS oldest`)
	if err != nil {
		return fmt.Errorf("read rejection bounds: %w", err)
	}
	expiry := now.Add(-RejectionRetention).UnixMilli()
	crossed := bounds.Last/pruneEvery != (bounds.Last-int64(inserted))/pruneEvery
	if !crossed && bounds.Oldest >= expiry {
		return nil
	}
	keepAbove := bounds.Last - (MaxRejections - pruneEvery)
	_, err = tx.ExecContext(ctx, tx.Rebind(`DELETE FROM rejected_messages
		WHERE id <= ? OR received_ms < ?`), keepAbove, expiry)
	if err != nil {
		return fmt.Errorf("prune rejections: %w", err)
	}
	return nil
}

// cleanText returns text as valid UTF-8 without NULs (which PostgreSQL's
// text refuses), cut to at most limit bytes at a character boundary.
func cleanText(text string, limit int) string {
	if len(text) > 4*limit {
		text = text[:4*limit] // no use cleaning what is cut anyway
	}
	text = strings.ToValidUTF8(text, "\uFFFD")
	text = strings.ReplaceAll(text, "\x00", "\uFFFD")
	if len(text) <= limit {
		return text
	}
	cut := limit
	for cut > 0 && !utf8.RuneStart(text[cut]) {
		cut--
	}
	return text[:cut]
}
