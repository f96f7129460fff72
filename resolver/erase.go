package resolver

import (
	"context"
	"fmt"

	"github.com/jmoiron/sqlx"
)

// StatusDeleted is the outcome of a deletion request message.
const StatusDeleted Status = "deleted"

// DeleteResult says what a deletion removed.
type DeleteResult struct {
	Profile     int64
	Events      int
	Identifiers int
}

// Delete erases the profile holding id, with every profile merged into it,
// for a privacy request: its identifiers, traits, events, identity links,
// history and audience memberships. The deletion is recorded with counts
// only, keeping no personal data. It returns an *Error with code ENotFound
// when no profile holds id.
func (s *Store) Delete(ctx context.Context, id Identifier, requestedBy string) (DeleteResult, error) {
	s.writeMu.Lock()
	defer s.writeMu.Unlock()

	var result DeleteResult
	err := s.db.WithTx(ctx, func(tx *sqlx.Tx) error {
		w := &writer{tx: tx, rules: s.rules, now: s.now()}
		var err error
		result, err = w.erase(ctx, id, requestedBy)
		return err
	})
	if err != nil {
		return result, fmt.Errorf("resolver.Delete %s: %w", id, err)
	}
	return result, nil
}

// deleteFor handles Segment's deletion notification, a message of type
// delete naming a userId. A user knit never saw is already deleted.
func (w *writer) deleteFor(ctx context.Context, m *Message) (Outcome, error) {
	outcome := Outcome{MessageID: m.ID, Status: StatusDeleted}
	id := Identifier{Type: TypeUserID, Value: normalise(TypeUserID, m.UserID)}
	result, err := w.erase(ctx, id, "delete message "+m.ID)
	if ErrorCode(err) == ENotFound {
		return outcome, nil
	}
	outcome.ProfileID = result.Profile
	return outcome, err
}

func (w *writer) erase(ctx context.Context, id Identifier, requestedBy string) (DeleteResult, error) {
	profile, err := w.ownerOf(ctx, id)
	if err != nil {
		return DeleteResult{}, err
	}
	family, err := w.family(ctx, profile)
	if err != nil {
		return DeleteResult{}, err
	}
	result := DeleteResult{Profile: profile}
	if err := w.countFamily(ctx, family, &result); err != nil {
		return result, err
	}

	steps := []string{
		`DELETE FROM identity_links WHERE message_id IN
		   (SELECT message_id FROM events WHERE profile_id IN (?))`,
		`DELETE FROM events WHERE profile_id IN (?)`,
		`DELETE FROM identities WHERE profile_id IN (?)`,
		`DELETE FROM traits WHERE profile_id IN (?)`,
		`DELETE FROM identity_decisions WHERE profile_id IN (?)`,
		`UPDATE identity_decisions SET identifier = '', detail = 'erased on request'
		 WHERE other_profile_id IN (?)`,
		`DELETE FROM audience_members WHERE profile_id IN (?)`,
		`UPDATE profiles SET retired_ms = ` + fmt.Sprint(w.now.UnixMilli()) + ` WHERE id IN (?)`,
	}
	for _, step := range steps {
		query, args, err := sqlx.In(step, family)
		if err != nil {
			return result, fmt.Errorf("build erase step: %w", err)
		}
		if _, err := w.tx.ExecContext(ctx, w.tx.Rebind(query), args...); err != nil {
			return result, fmt.Errorf("erase profile %d: %w", profile, err)
		}
	}

	_, err = w.tx.ExecContext(ctx, w.tx.Rebind(`INSERT INTO profile_deletions
		(profile_id, events_deleted, identifiers_deleted, requested_by, at_ms)
		VALUES (?, ?, ?, ?, ?)`), profile, result.Events, result.Identifiers,
		requestedBy, w.now.UnixMilli())
	if err != nil {
		return result, fmt.Errorf("record deletion of profile %d: %w", profile, err)
	}
	return result, nil
}

func (w *writer) countFamily(ctx context.Context, family []int64, result *DeleteResult) error {
	for _, count := range []struct {
		query string
		dest  *int
	}{
		{`SELECT COUNT(*) FROM events WHERE profile_id IN (?)`, &result.Events},
		{`SELECT COUNT(*) FROM identities WHERE profile_id IN (?)`, &result.Identifiers},
	} {
		query, args, err := sqlx.In(count.query, family)
		if err != nil {
			return fmt.Errorf("build count: %w", err)
		}
		if err := w.tx.GetContext(ctx, count.dest, w.tx.Rebind(query), args...); err != nil {
			return fmt.Errorf("count what to erase: %w", err)
		}
	}
	return nil
}
