package resolver

import (
	"context"
	"fmt"
	"strings"
)

// Kinds of identity decisions, each recorded with the message that caused
// it and the rule involved.
const (
	DecisionCreated  = "created"          // a new profile for the message
	DecisionAttached = "attached"         // an identifier joined a profile
	DecisionMerged   = "merged"           // two profiles became one
	DecisionLimit    = "dropped_by_limit" // an identifier kept off by a limit
	DecisionBlocked  = "dropped_blocked"  // a value that is never an identifier
	DecisionCap      = "cap_reached"      // a merge or identifier over a hard cap
)

// decision is one choice the resolver made for a message; profile 0 means
// the profile the message finally landed on.
type decision struct {
	kind       string
	profile    int64
	identifier Identifier
	other      int64
	rule       string
	detail     string
}

// record remembers a decision, written when the message is stored.
func (w *writer) record(d decision) { w.decisions = append(w.decisions, d) }

// writeDecisions stores the message's decisions and its identity links,
// which name the message's event by its id (eventID) and its messageId.
func (w *writer) writeDecisions(ctx context.Context, m *Message, eventID, profile int64,
	linked []Identifier) error {
	for _, id := range linked {
		err := w.write(ctx, &bulkLinks, eventID, id.Type, id.Value, m.ID)
		if err != nil {
			return fmt.Errorf("record identity link %s: %w", id, err)
		}
	}

	for _, d := range w.decisions {
		target := d.profile
		if target == 0 {
			target = profile
		}
		err := w.write(ctx, &bulkDecisions,
			nullable(target), d.kind, m.ID, identifierText(d.identifier),
			nullable(d.other), d.rule, d.detail, m.Timestamp.UnixMilli(),
			w.now.UnixMilli())
		if err != nil {
			return fmt.Errorf("record %s decision: %w", d.kind, err)
		}
	}
	w.decisions = w.decisions[:0]
	return nil
}

func nullable(id int64) any {
	if id == 0 {
		return nil
	}
	return id
}

func identifierText(id Identifier) string {
	if id.Type == "" {
		return ""
	}
	return id.String()
}

func listIdentifiers(ids []Identifier) string {
	parts := make([]string, len(ids))
	for i, id := range ids {
		parts[i] = id.String()
	}
	return strings.Join(parts, ", ")
}

// DecisionRecord is one stored identity decision.
type DecisionRecord struct {
	ID             int64  `db:"id"`
	ProfileID      *int64 `db:"profile_id"`
	Kind           string `db:"kind"`
	MessageID      string `db:"message_id"`
	Identifier     string `db:"identifier"`
	OtherProfileID *int64 `db:"other_profile_id"`
	Rule           string `db:"rule"`
	Detail         string `db:"detail"`
	EventMS        int64  `db:"event_ms"`
	AtMS           int64  `db:"at_ms"`
}

// Explain says what happened in plain words, for people reading a
// profile's history.
func (d DecisionRecord) Explain() string {
	id := strings.Replace(d.Identifier, ":", " ", 1)
	switch d.Kind {
	case DecisionCreated:
		return fmt.Sprintf("Profile %d created for message %s, which carried %s.",
			deref(d.ProfileID), d.MessageID, d.Detail)
	case DecisionAttached:
		return fmt.Sprintf("Added %s from message %s, whose other identifiers "+
			"were already on this profile.", id, d.MessageID)
	case DecisionMerged:
		return fmt.Sprintf("Merged with profile %d because message %s tied them: %s.",
			deref(d.OtherProfileID), d.MessageID, d.Detail)
	case DecisionLimit:
		return fmt.Sprintf("Did not add %s from message %s: %s, so the message's "+
			"least trusted identifier type was left out.", id, d.MessageID,
			strings.TrimPrefix(d.Rule, "limit: "))
	case DecisionCap:
		if d.OtherProfileID != nil {
			return fmt.Sprintf("Not merged with profile %d although message %s tied "+
				"them: %s.", *d.OtherProfileID, d.MessageID, strings.TrimPrefix(d.Rule, "cap: "))
		}
		return fmt.Sprintf("Did not add %s from message %s: %s.", id, d.MessageID,
			strings.TrimPrefix(d.Rule, "cap: "))
	case DecisionUnlinked:
		return fmt.Sprintf("Unlinked %s: it is blocked for good and the profile was "+
			"rebuilt from its messages (%s).", id, orDash(d.Detail))
	case DecisionRebuilt:
		return fmt.Sprintf("Rebuilt from the messages of profile %d after %s was "+
			"unlinked (%s).", deref(d.OtherProfileID), d.Identifier, orDash(d.Detail))
	case DecisionBlocked:
		return fmt.Sprintf("Ignored %s in message %s: a blocked value (%s).",
			id, d.MessageID, d.Detail)
	}
	return fmt.Sprintf("%s: %s %s (%s)", d.Kind, id, d.MessageID, d.Rule)
}

func deref(id *int64) int64 {
	if id == nil {
		return 0
	}
	return *id
}

// History returns the identity decisions of a profile and of every profile
// merged into it, in the order of the messages' times (decisions taken
// without a message, such as a rebuild, at the time they were taken).
func (p *Profiles) History(ctx context.Context, profile int64) ([]DecisionRecord, error) {
	var records []DecisionRecord
	err := p.db.SelectContext(ctx, &records, p.db.Rebind(`SELECT id, profile_id,
		kind, message_id, identifier, other_profile_id, rule, detail, event_ms, at_ms
		FROM identity_decisions
		WHERE profile_id = ? OR profile_id IN (SELECT id FROM profiles WHERE merged_into = ?)
		ORDER BY event_ms, id`), profile, profile)
	if err != nil {
		return nil, fmt.Errorf("read history of profile %d: %w", profile, err)
	}
	return records, nil
}

func orDash(text string) string {
	if strings.TrimSpace(text) == "" {
		return "no reason given"
	}
	return text
}
