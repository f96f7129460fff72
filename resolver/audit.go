package resolver

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"time"

	"github.com/jmoiron/sqlx"

	"github.com/knit-cdp/knit/resolver/sqldb"
)

// Audited actions, as the audit log names them.
const (
	AuditUnlink     = "identity.unlink"
	AuditDelete     = "profile.delete"
	AuditRunNow     = "audience.run"
	AuditTokenReset = "token.reset"
)

// ActorUnknown names a change made through a path that did not say who
// asked; seeing it in the log means a caller forgot WithActor.
const ActorUnknown = "unknown"

// Actor is who asked for a change: a kind of credential such as
// "api:token", "console:admin", "console:token", "cli" or
// "segment:webhook" (never a secret), and the id of the HTTP request that
// asked, when there was one.
type Actor struct {
	Name      string
	RequestID string
}

type actorKey struct{}

// WithActor returns ctx carrying the actor that changes made under it are
// recorded as.
func WithActor(ctx context.Context, actor Actor) context.Context {
	return context.WithValue(ctx, actorKey{}, actor)
}

// ActorOf returns the actor ctx carries, with Name ActorUnknown when none.
func ActorOf(ctx context.Context) Actor {
	if actor, ok := ctx.Value(actorKey{}).(Actor); ok && actor.Name != "" {
		return actor
	}
	return Actor{Name: ActorUnknown}
}

// HasActor tells whether ctx names who asked for what it does.
func HasActor(ctx context.Context) bool {
	actor, ok := ctx.Value(actorKey{}).(Actor)
	return ok && actor.Name != ""
}

// AuditEntry is one line of the audit log.
type AuditEntry struct {
	ID        int64           `json:"id" db:"id"`
	AtMS      int64           `json:"-" db:"at_ms"`
	At        string          `json:"at" db:"-"`
	Actor     string          `json:"actor" db:"actor"`
	Action    string          `json:"action" db:"action"`
	Target    string          `json:"target" db:"target"`
	Detail    json.RawMessage `json:"detail" db:"-"`
	DetailRaw string          `json:"-" db:"detail"`
	RequestID string          `json:"request_id" db:"request_id"`
}

// RecordAudit writes one entry for the change action on target, by the
// actor ctx carries, at the time at, inside tx: the entry commits or rolls
// back with the change. detail is encoded as a JSON object and must hold
// no secret.
func RecordAudit(ctx context.Context, tx *sqlx.Tx, at time.Time, action, target string,
	detail any) error {
	encoded, err := json.Marshal(detail)
	if err != nil {
		return fmt.Errorf("encode audit detail: %w", err)
	}
	actor := ActorOf(ctx)
	_, err = tx.ExecContext(ctx, tx.Rebind(`INSERT INTO audit_log
		(at_ms, actor, action, target, detail, request_id) VALUES (?, ?, ?, ?, ?, ?)`),
		at.UnixMilli(), actor.Name, action, target, string(encoded), actor.RequestID)
	if err != nil {
		return fmt.Errorf("record %s in the audit log: %w", action, err)
	}
	return nil
}

// AuditLog reads the audit log.
type AuditLog struct{ db *sqldb.DB }

// NewAuditLog returns a reader of db's audit log.
func NewAuditLog(db *sqldb.DB) *AuditLog { return &AuditLog{db: db} }

// AuditPage is a page of the audit log, newest first, and the cursor of
// the next older page ("" at the end).
type AuditPage struct {
	Entries []AuditEntry
	Next    string
}

// List returns up to limit entries older than the cursor before (""
// starts at the newest), newest first. A cursor that is not one List gave
// is an *Error with code EInvalid.
func (l *AuditLog) List(ctx context.Context, before string, limit int) (AuditPage, error) {
	below := int64(1<<63 - 1)
	if before != "" {
		n, err := strconv.ParseInt(before, 10, 64)
		if err != nil || n < 1 {
			return AuditPage{}, Errorf(EInvalid, "next must be a cursor from a "+
				"previous page of the audit log")
		}
		below = n
	}
	var page AuditPage
	err := l.db.SelectContext(ctx, &page.Entries, l.db.Rebind(`SELECT id, at_ms, actor,
		action, target, detail, request_id FROM audit_log WHERE id < ?
		ORDER BY id DESC LIMIT ?`), below, limit+1)
	if err != nil {
		return AuditPage{}, fmt.Errorf("read the audit log: %w", err)
	}
	if len(page.Entries) > limit {
		page.Entries = page.Entries[:limit]
		page.Next = strconv.FormatInt(page.Entries[limit-1].ID, 10)
	}
	for i := range page.Entries {
		e := &page.Entries[i]
		e.At = time.UnixMilli(e.AtMS).UTC().Format("2006-01-02T15:04:05.000Z")
		e.Detail = json.RawMessage(e.DetailRaw)
	}
	return page, nil
}
