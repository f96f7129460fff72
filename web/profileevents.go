package web

import (
	"encoding/base64"
	"encoding/json"
	"strconv"
	"strings"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/knit-cdp/knit/audiences"
	"github.com/knit-cdp/knit/resolver"
)

// profileEvent is one entry of /events, in Segment's shape.
type profileEvent struct {
	ExternalIDs []eventExternalID `json:"external_ids"`
	Context     json.RawMessage   `json:"context"`
	Type        string            `json:"type"`
	MessageID   string            `json:"message_id"`
	SourceID    string            `json:"source_id"`
	Timestamp   string            `json:"timestamp"`
	Properties  json.RawMessage   `json:"properties"`
	Event       string            `json:"event"`
	Related     map[string]string `json:"related"`
}

type eventExternalID struct {
	Collection string `json:"collection"`
	Type       string `json:"type"`
	ID         string `json:"id"`
	Encoding   string `json:"encoding"`
}

// profileEvents serves a profile's events across every device and app:
// start and end (ISO-8601, end exclusive), include and exclude (event
// names, comma-separated), sort (desc by default), limit and next.
func (s *Server) profileEvents(c *gin.Context, q profileQuery) (any, error) {
	events, err := eventQuery(c, q.limit)
	if err != nil {
		return nil, err
	}
	page, err := s.profiles.EventPage(c.Request.Context(), q.profile, events)
	if err != nil {
		return nil, err
	}

	hasMore := len(page) > q.limit
	page = page[:min(len(page), q.limit)]
	data := make([]profileEvent, 0, len(page))
	for _, e := range page {
		data = append(data, eventEntry(e, q.profile))
	}
	last := ""
	if hasMore {
		last = encodePosition(page[len(page)-1].Position())
	}
	return gin.H{"data": data, "cursor": eventCursor(c, q.limit, hasMore, last)}, nil
}

func eventQuery(c *gin.Context, limit int) (resolver.EventQuery, error) {
	q := resolver.EventQuery{Limit: limit + 1, Include: splitNames(c.Query("include")),
		Exclude: splitNames(c.Query("exclude"))}
	for _, bound := range []struct {
		param string
		dest  *time.Time
	}{{"start", &q.Start}, {"end", &q.End}} {
		if text := c.Query(bound.param); text != "" {
			t, ok := resolver.ParseTime(text)
			if !ok {
				return q, resolver.Errorf(resolver.EInvalid,
					"%s %q is not an ISO-8601 time", bound.param, text)
			}
			*bound.dest = t
		}
	}
	switch c.DefaultQuery("sort", "desc") {
	case "asc":
		q.Ascending = true
	case "desc":
	default:
		return q, resolver.Errorf(resolver.EInvalid, "sort must be asc or desc")
	}
	if next := c.Query("next"); next != "" {
		position, err := decodePosition(next)
		if err != nil {
			return q, err
		}
		q.After = &position
	}
	return q, nil
}

func splitNames(text string) []string {
	var names []string
	for _, name := range strings.Split(text, ",") {
		if name = strings.TrimSpace(name); name != "" {
			names = append(names, name)
		}
	}
	return names
}

func encodePosition(p resolver.EventPosition) string {
	text := cursorPrefix + strconv.FormatInt(p.TimestampMS, 10) + ":" +
		strconv.FormatInt(p.ID, 10)
	return base64.RawURLEncoding.EncodeToString([]byte(text))
}

func decodePosition(next string) (resolver.EventPosition, error) {
	raw, err := base64.RawURLEncoding.DecodeString(next)
	position, prefixed := strings.CutPrefix(string(raw), cursorPrefix)
	tsText, idText, ok := strings.Cut(position, ":")
	ok = ok && prefixed
	ts, tsErr := strconv.ParseInt(tsText, 10, 64)
	id, idErr := strconv.ParseInt(idText, 10, 64)
	if err != nil || !ok || tsErr != nil || idErr != nil {
		return resolver.EventPosition{}, resolver.Errorf(resolver.EInvalid,
			"next cursor %q is not valid", next)
	}
	return resolver.EventPosition{TimestampMS: ts, ID: id}, nil
}

func eventCursor(c *gin.Context, limit int, hasMore bool, last string) profileCursor {
	cursor := profileCursor{URL: c.Request.URL.EscapedPath(), HasMore: hasMore, Limit: limit}
	if hasMore {
		cursor.Next = last
	}
	return cursor
}

func eventEntry(e resolver.ProfileEvent, profile int64) profileEvent {
	entry := profileEvent{
		Type: e.Type, MessageID: e.MessageID, SourceID: e.Source, Event: e.Event,
		Timestamp:   audiences.FormatTime(e.Timestamp()),
		Properties:  json.RawMessage(e.Properties),
		Context:     json.RawMessage("{}"),
		ExternalIDs: []eventExternalID{},
		Related:     map[string]string{"users": strconv.FormatInt(profile, 10)},
	}
	var raw struct {
		Context json.RawMessage `json:"context"`
	}
	if json.Unmarshal([]byte(e.Raw), &raw) == nil && len(raw.Context) > 0 &&
		raw.Context[0] == '{' {
		entry.Context = raw.Context
	}
	for _, id := range e.Identifiers {
		entry.ExternalIDs = append(entry.ExternalIDs, eventExternalID{
			Collection: "users", Type: id.Type, ID: id.Value, Encoding: "none",
		})
	}
	return entry
}

// profileMetadata serves when the profile began, was last updated, and its
// first and last messages with their sources.
func (s *Server) profileMetadata(c *gin.Context, q profileQuery) (any, error) {
	meta, err := s.profiles.Metadata(c.Request.Context(), q.profile)
	if err != nil {
		return nil, err
	}
	return gin.H{"metadata": gin.H{
		"created_at":       audiences.FormatTime(meta.CreatedAt),
		"updated_at":       audiences.FormatTime(meta.UpdatedAt),
		"expires_at":       nil,
		"first_message_id": meta.FirstMessageID,
		"first_source_id":  meta.FirstSourceID,
		"last_message_id":  meta.LastMessageID,
		"last_source_id":   meta.LastSourceID,
	}}, nil
}

// profileLinks serves the accounts (group ids from group calls) the profile
// belongs to, in Segment's links shape.
func (s *Server) profileLinks(c *gin.Context, q profileQuery) (any, error) {
	groups, err := s.profiles.Groups(c.Request.Context(), q.profile)
	if err != nil {
		return nil, err
	}
	data := []gin.H{}
	for _, group := range groups {
		data = append(data, gin.H{"to_collection": "accounts", "external_ids": []eventExternalID{
			{Collection: "accounts", Type: "group_id", ID: group, Encoding: "none"},
		}})
	}
	return gin.H{"data": data}, nil
}
