package resolver

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"sort"
	"strings"

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
// only, keeping no personal data, in the audit log too, under the actor ctx
// carries (WithActor). It returns an *Error with code ENotFound when no
// profile holds id.
func (s *Store) Delete(ctx context.Context, id Identifier,
	requestedBy string) (DeleteResult, error) {
	s.writeMu.Lock()
	defer s.writeMu.Unlock()
	id.Value = s.rules.normalise(id.Type, id.Value)

	var result DeleteResult
	err := s.withWriteTx(ctx, func(tx *sqlx.Tx) error {
		w := &writer{tx: tx, rules: s.rules, now: s.now(), dialect: s.db.Dialect()}
		var err error
		if result, err = w.erase(ctx, id, requestedBy); err != nil {
			return err
		}
		return w.auditDelete(ctx, result, nil)
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
	if err != nil {
		return outcome, err
	}
	segment := WithActor(ctx, Actor{Name: "segment:" + m.Source, RequestID: m.RequestID})
	return outcome, w.auditDelete(segment, result, map[string]any{"message_id": m.ID})
}

// auditDelete records an erasure in the audit log: the profile number and
// counts, never an identifier, as the person is gone.
func (w *writer) auditDelete(ctx context.Context, result DeleteResult,
	detail map[string]any) error {
	if detail == nil {
		detail = map[string]any{}
	}
	detail["events_deleted"] = result.Events
	detail["identifiers_deleted"] = result.Identifiers
	return RecordAudit(ctx, w.tx, w.now, AuditDelete,
		fmt.Sprintf("profile:%d", result.Profile), detail)
}

func (w *writer) erase(ctx context.Context, id Identifier,
	requestedBy string) (DeleteResult, error) {
	profiles, events, err := w.personOf(ctx, id)
	if err != nil {
		return DeleteResult{}, err
	}
	if len(profiles) == 0 && len(events) == 0 {
		return DeleteResult{}, Errorf(ENotFound, "no profile or message holds %s", id)
	}
	scrub, err := w.heldBy(ctx, profiles)
	if err != nil {
		return DeleteResult{}, err
	}
	scrub = append(scrub, id)
	named, err := w.linksNaming(ctx, scrub)
	if err != nil {
		return DeleteResult{}, err
	}
	messages, eventIDs := append(events, named.gone()...).split()

	result := DeleteResult{Events: len(messages), Identifiers: len(scrub) - 1}
	if len(profiles) > 0 {
		result.Profile = profiles[0]
	}
	// The audit log forgets every identifier the person's messages carried,
	// an unlinked one too, which no profile holds any more.
	var carried []Identifier
	err = w.selectIn(ctx, &carried, `SELECT DISTINCT type, value FROM identity_links
		WHERE event_id IN (?)`, eventIDs)
	if err != nil {
		return result, err
	}
	if err := w.eraseRows(ctx, profiles, messages, eventIDs, scrub); err != nil {
		return result, err
	}
	if err := w.deleteLinks(ctx, named.besides(eventIDs)); err != nil {
		return result, err
	}
	if err := w.scrubAudit(ctx, append(scrub, carried...)); err != nil {
		return result, err
	}
	_, err = w.tx.ExecContext(ctx, w.tx.Rebind(`INSERT INTO profile_deletions
		(profile_id, events_deleted, identifiers_deleted, requested_by, at_ms)
		VALUES (?, ?, ?, ?, ?)`), result.Profile, result.Events, result.Identifiers,
		requestedBy, w.now.UnixMilli())
	if err != nil {
		return result, fmt.Errorf("record deletion of profile %d: %w", result.Profile, err)
	}
	return result, nil
}

// personEvent is one of a person's messages: its event id and messageId.
// The event is gone when retention dropped it; its identity links remain.
type personEvent struct {
	EventID   int64  `db:"event_id"`
	MessageID string `db:"message_id"`
}

// personEvents are a person's messages; one may come more than once.
type personEvents []personEvent

// split returns the messages' ids and their events' ids, each sorted and
// without repeats.
func (events personEvents) split() ([]string, []int64) {
	messages := make([]string, 0, len(events))
	ids := make([]int64, 0, len(events))
	for _, e := range events {
		messages = append(messages, e.MessageID)
		ids = append(ids, e.EventID)
	}
	slices.Sort(ids)
	return uniqueStrings(messages), slices.Compact(ids)
}

// personOf finds everything of the person id names: the live profile that
// holds id with the profiles merged into it, the live profiles of any
// message that carried id (an unlink may have moved them), and all their
// messages, including messages that carried id but belong to no profile
// any more, or whose event retention dropped.
func (w *writer) personOf(ctx context.Context, id Identifier) ([]int64, personEvents, error) {
	links, err := w.linksNaming(ctx, []Identifier{id})
	if err != nil {
		return nil, nil, err
	}
	carried := links.events()

	seeds := map[int64]bool{}
	if owner, err := w.ownerOf(ctx, id); err == nil {
		seeds[owner] = true
	} else if ErrorCode(err) != ENotFound {
		return nil, nil, err
	}
	_, carriedIDs := carried.split()
	var holders []int64
	err = w.selectIn(ctx, &holders, `SELECT DISTINCT profile_id FROM events
		WHERE id IN (?) AND profile_id IS NOT NULL`, carriedIDs)
	if err != nil {
		return nil, nil, err
	}
	for _, p := range holders {
		seeds[p] = true
	}

	var profiles []int64
	for seed := range seeds {
		family, err := w.family(ctx, seed)
		if err != nil {
			return nil, nil, err
		}
		profiles = append(profiles, family...)
	}
	sort.Slice(profiles, func(i, j int) bool { return profiles[i] < profiles[j] })

	var own personEvents
	err = w.selectIn(ctx, &own, `SELECT id AS event_id, message_id FROM events
		WHERE profile_id IN (?)`, profiles)
	if err != nil {
		return nil, nil, err
	}
	return profiles, append(own, carried...), nil
}

// namedLink is an identity link found by the identifier it names: one
// message that carried it, and whether that message's event is gone
// (PostgreSQL's retention dropped it while its links stayed).
type namedLink struct {
	personEvent
	Identifier
	Gone bool `db:"gone"`
}

// namedLinks are the links that name some identifiers.
type namedLinks []namedLink

// linksNaming finds every identity link that names one of ids. No index
// serves a lookup by identifier (migration 16 dropped it: keeping it up
// cost every stored event a write to a random page), so each chunk of ids
// is one pass over the links; an erasure, the only caller, makes two.
func (w *writer) linksNaming(ctx context.Context, ids []Identifier) (namedLinks, error) {
	var found namedLinks
	err := forChunks(ids, func(chunk any) error {
		pairs := chunk.([]Identifier)
		args := make([]any, 0, 2*len(pairs))
		for _, id := range pairs {
			args = append(args, id.Type, id.Value)
		}
		query := `SELECT l.event_id, l.message_id, l.type, l.value,
			NOT EXISTS (SELECT 1 FROM events e WHERE e.id = l.event_id) AS gone
			FROM identity_links l WHERE (l.type, l.value) IN (VALUES ` +
			strings.TrimSuffix(strings.Repeat("(?, ?), ", len(pairs)), ", ") + `)`
		return appendSelect(ctx, w.tx, &found, w.tx.Rebind(query), args)
	})
	if err != nil {
		return nil, fmt.Errorf("find the messages that carried %d identifiers: %w",
			len(ids), err)
	}
	return found, nil
}

// events returns the messages the links belong to.
func (links namedLinks) events() personEvents {
	events := make(personEvents, 0, len(links))
	for _, l := range links {
		events = append(events, l.personEvent)
	}
	return events
}

// gone returns the messages whose event is gone.
func (links namedLinks) gone() personEvents {
	var events personEvents
	for _, l := range links {
		if l.Gone {
			events = append(events, l.personEvent)
		}
	}
	return events
}

// besides returns the links whose event is not among eventIDs (sorted).
func (links namedLinks) besides(eventIDs []int64) namedLinks {
	var rest namedLinks
	for _, l := range links {
		if _, found := slices.BinarySearch(eventIDs, l.EventID); !found {
			rest = append(rest, l)
		}
	}
	return rest
}

// deleteLinks removes the given links, each by its key.
func (w *writer) deleteLinks(ctx context.Context, links namedLinks) error {
	query := w.tx.Rebind(`DELETE FROM identity_links
		WHERE event_id = ? AND type = ? AND value = ?`)
	for _, l := range links {
		if _, err := w.tx.ExecContext(ctx, query, l.EventID, l.Type, l.Value); err != nil {
			return fmt.Errorf("scrub a link to %s: %w", l.Type, err)
		}
	}
	return nil
}

// heldBy lists the identifiers the profiles hold.
func (w *writer) heldBy(ctx context.Context, profiles []int64) ([]Identifier, error) {
	var held []Identifier
	err := w.selectIn(ctx, &held, `SELECT type, value FROM identities
		WHERE profile_id IN (?)`, profiles)
	return held, err
}

// eraseRows removes the person's rows everywhere they appear (their
// profiles, their messages and those messages' events), and every record
// that names one of their identifiers.
func (w *writer) eraseRows(ctx context.Context, profiles []int64, messages []string,
	eventIDs []int64, scrub []Identifier) error {
	byProfile := []string{
		`DELETE FROM identities WHERE profile_id IN (?)`,
		`DELETE FROM traits WHERE profile_id IN (?)`,
		`DELETE FROM identity_decisions WHERE profile_id IN (?)`,
		`UPDATE identity_decisions SET identifier = '', detail = 'erased on request'
		 WHERE other_profile_id IN (?)`,
		// The current results lose the person: their sizes follow.
		`UPDATE audience_runs SET size = size - 1 WHERE id IN
		   (SELECT run_id FROM audience_members WHERE profile_id IN (?))`,
		`DELETE FROM audience_members WHERE profile_id IN (?)`,
		`DELETE FROM audience_changes WHERE profile_id IN (?)`,
		`UPDATE profiles SET retired_ms = ` + fmt.Sprint(w.now.UnixMilli()) + ` WHERE id IN (?)`,
	}
	for _, query := range byProfile {
		if err := w.execIn(ctx, query, profiles); err != nil {
			return err
		}
	}
	for _, id := range messages {
		_, err := w.tx.ExecContext(ctx, w.tx.Rebind(`INSERT INTO erased_messages
			(message_id) VALUES (?) ON CONFLICT DO NOTHING`), id)
		if err != nil {
			return fmt.Errorf("remember erased message: %w", err)
		}
	}
	if err := w.execIn(ctx, `DELETE FROM identity_links WHERE event_id IN (?)`,
		eventIDs); err != nil {
		return err
	}
	byMessage := []string{
		`DELETE FROM identity_decisions WHERE message_id IN (?)`,
		`DELETE FROM events WHERE message_id IN (?)`,
	}
	for _, query := range byMessage {
		if err := w.execIn(ctx, query, messages); err != nil {
			return err
		}
	}
	return w.scrubIdentifiers(ctx, scrub)
}

// scrubIdentifiers removes blocks, history entries and deliveries that name
// any of ids, wherever they are (another person's history included); erase
// removes the links. Text an operator wrote (a block's or an unlink's
// reason) that mentions a value is blanked instead.
func (w *writer) scrubIdentifiers(ctx context.Context, ids []Identifier) error {
	for _, id := range ids {
		pattern := likePattern(id.Value)
		for _, step := range []struct {
			query string
			args  []any
		}{
			{`DELETE FROM identity_blocks WHERE type = ? AND value = ?`, []any{id.Type, id.Value}},
			{`UPDATE identity_blocks SET reason = 'erased on request'
			  WHERE reason LIKE ? ESCAPE '\'`, []any{pattern}},
			// Deliveries not yet sent (and the record of those sent) carry
			// the value as one JSON string.
			{`DELETE FROM outbox WHERE body LIKE ? ESCAPE '\'`, []any{jsonStringPattern(id.Value)}},
		} {
			if _, err := w.tx.ExecContext(ctx, w.tx.Rebind(step.query), step.args...); err != nil {
				return fmt.Errorf("scrub %s: %w", id.Type, err)
			}
		}
	}
	return w.scrubHistory(ctx, ids)
}

// historyEntry is an identity decision an erasure looks at.
type historyEntry struct {
	ID         int64  `db:"id"`
	Kind       string `db:"kind"`
	Identifier string `db:"identifier"`
	Detail     string `db:"detail"`
}

// scrubHistory removes the history entries that name one of ids, as their
// identifier or listed whole in their detail (a created or merged entry
// lists "user_id:u1, email:...", and one that lists user_id:u12 does not
// name user_id:u1), and blanks an operator's reason that mentions a value.
// The history has no index by identifier: one pass over it for each chunk
// of ids.
func (w *writer) scrubHistory(ctx context.Context, ids []Identifier) error {
	var drop, blank []int64
	err := forChunks(ids, func(chunk any) error {
		entries, err := w.historyMentioning(ctx, chunk.([]Identifier))
		for _, entry := range entries {
			switch {
			case entry.names(ids):
				drop = append(drop, entry.ID)
			case entry.operatorText():
				blank = append(blank, entry.ID)
			}
		}
		return err
	})
	if err != nil {
		return err
	}
	if err := w.execIn(ctx, `DELETE FROM identity_decisions WHERE id IN (?)`,
		drop); err != nil {
		return err
	}
	return w.execIn(ctx, `UPDATE identity_decisions SET detail = 'erased on request'
		WHERE id IN (?)`, blank)
}

// historyMentioning reads the history entries whose identifier is one of
// ids or whose detail holds one of their values anywhere.
func (w *writer) historyMentioning(ctx context.Context,
	ids []Identifier) ([]historyEntry, error) {
	var names []string
	var likes []string
	var patterns []any
	for _, id := range ids {
		names = append(names, id.String())
		likes = append(likes, `detail LIKE ? ESCAPE '\'`)
		patterns = append(patterns, likePattern(id.Value))
	}
	query, args, err := sqlx.In(`SELECT id, kind, identifier, detail
		FROM identity_decisions WHERE identifier IN (?) OR `+
		strings.Join(likes, " OR "), append([]any{names}, patterns...)...)
	if err != nil {
		return nil, fmt.Errorf("build history query: %w", err)
	}
	var entries []historyEntry
	err = w.tx.SelectContext(ctx, &entries, w.tx.Rebind(query), args...)
	if err != nil {
		return nil, fmt.Errorf("find history entries naming %d identifiers: %w", len(ids), err)
	}
	return entries, nil
}

// names reports whether the entry is about one of ids: its identifier, or
// one listed whole in a detail knit wrote (not an operator's reason).
func (entry historyEntry) names(ids []Identifier) bool {
	for _, id := range ids {
		if entry.Identifier == id.String() {
			return true
		}
		if !entry.operatorText() && listsWhole(entry.Detail, id.String()) {
			return true
		}
	}
	return false
}

// operatorText reports whether the entry's detail is a reason an operator
// wrote (for an unlink or a block) rather than text knit composed.
func (entry historyEntry) operatorText() bool {
	switch entry.Kind {
	case DecisionUnlinked, DecisionRebuilt, DecisionBlocked:
		return true
	}
	return false
}

// listsWhole reports whether text holds identifier with a space or the
// start before it and a comma, a space or the end after it.
func listsWhole(text, identifier string) bool {
	for from := 0; from < len(text); {
		at := strings.Index(text[from:], identifier)
		if at < 0 {
			return false
		}
		start, end := from+at, from+at+len(identifier)
		before := start == 0 || text[start-1] == ' '
		after := end == len(text) || text[end] == ',' || text[end] == ' '
		if before && after {
			return true
		}
		from = start + 1
	}
	return false
}

// likePattern is a LIKE pattern that finds value anywhere in a text.
func likePattern(value string) string {
	return "%" + escapeLike(value) + "%"
}

// scrubAudit blanks what audit log entries say about ids: the entry stays
// (who did what, and when), not whom it was done to.
func (w *writer) scrubAudit(ctx context.Context, ids []Identifier) error {
	for _, id := range ids {
		pattern := likePattern(id.Value)
		_, err := w.tx.ExecContext(ctx, w.tx.Rebind(`UPDATE audit_log
			SET target = 'erased on request' WHERE target = ?`), id.String())
		if err != nil {
			return fmt.Errorf("scrub the audit log: %w", err)
		}
		// Only an unlink's detail holds text someone wrote: its reason.
		_, err = w.tx.ExecContext(ctx, w.tx.Rebind(`UPDATE audit_log
			SET detail = '{"erased":"on request"}' WHERE action = ?
			AND (detail LIKE ? ESCAPE '\' OR detail LIKE ? ESCAPE '\')`),
			AuditUnlink, pattern, jsonPattern(id.Value))
		if err != nil {
			return fmt.Errorf("scrub the audit log: %w", err)
		}
	}
	return nil
}

// jsonPattern is a LIKE pattern that finds value inside JSON text, where
// quotes, backslashes and control characters stand escaped.
func jsonPattern(value string) string {
	return "%" + escapeLike(jsonInner(value)) + "%"
}

// jsonStringPattern is a LIKE pattern that finds value as a whole JSON
// string: "u1" and not "u12".
func jsonStringPattern(value string) string {
	return `%"` + escapeLike(jsonInner(value)) + `"%`
}

// jsonInner is value encoded as a JSON string, without its quotes.
func jsonInner(value string) string {
	encoded, _ := json.Marshal(value) // a string always encodes
	return string(encoded[1 : len(encoded)-1])
}

// execIn runs a statement with one IN (?) over values, in chunks small
// enough for every engine's parameter limit.
func (w *writer) execIn(ctx context.Context, query string, values any) error {
	return forChunks(values, func(chunk any) error {
		q, args, err := sqlx.In(query, chunk)
		if err != nil {
			return fmt.Errorf("build statement: %w", err)
		}
		if _, err := w.tx.ExecContext(ctx, w.tx.Rebind(q), args...); err != nil {
			return fmt.Errorf("erase: %w", err)
		}
		return nil
	})
}

// selectIn is execIn for a query whose rows are appended to dest.
func (w *writer) selectIn(ctx context.Context, dest any, query string, values any) error {
	return forChunks(values, func(chunk any) error {
		q, args, err := sqlx.In(query, chunk)
		if err != nil {
			return fmt.Errorf("build query: %w", err)
		}
		return appendSelect(ctx, w.tx, dest, w.tx.Rebind(q), args)
	})
}
