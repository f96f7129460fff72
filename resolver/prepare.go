package resolver

// prepared is what storing a message needs that can be worked out before
// the write lock is taken: in the request's own goroutine, so that many
// requests do it at once while the single writer only writes.
type prepared struct {
	rules      *Rules // whose extraction this is
	ids        []Identifier
	blocked    []blockedIdentifier
	properties string // the properties as JSON
}

// prepare works out each message's identifiers and properties JSON under
// the store's rules, unless that was done already.
func (s *Store) prepare(messages []*Message) {
	for _, m := range messages {
		if m.prepared == nil || m.prepared.rules != &s.rules {
			ids, blocked := s.rules.extract(m)
			m.prepared = &prepared{rules: &s.rules, ids: ids, blocked: blocked,
				properties: m.PropertiesJSON()}
		}
	}
}

// extracted returns the message's identifiers and the blocked ones, as
// prepare found them.
func (w *writer) extracted(m *Message) ([]Identifier, []blockedIdentifier) {
	if m.prepared != nil {
		// Callers append to and reorder these: hand out copies.
		return append([]Identifier(nil), m.prepared.ids...),
			append([]blockedIdentifier(nil), m.prepared.blocked...)
	}
	return w.rules.extract(m)
}

// propertiesJSON returns the message's properties as JSON.
func propertiesJSON(m *Message) string {
	if m.prepared != nil {
		return m.prepared.properties
	}
	return m.PropertiesJSON()
}
