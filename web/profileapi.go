package web

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/knit-cdp/knit/audiences"
	"github.com/knit-cdp/knit/resolver"
	"github.com/knit-cdp/knit/web/httpx"
)

// Segment's Profile API page sizes.
const (
	profileDefaultLimit = 10
	profileMaxLimit     = 200
)

// cursorPrefix marks knit's Profile API cursors, so that a made-up one is
// refused instead of silently ending the list.
const cursorPrefix = "knit1:"

// profileCursor is the cursor object of Segment's Profile API responses.
type profileCursor struct {
	URL     string `json:"url"`
	HasMore bool   `json:"has_more"`
	Next    string `json:"next"`
	Limit   int    `json:"limit"`
}

// externalID is one entry of /external_ids, in Segment's shape.
type externalID struct {
	SourceID       string `json:"source_id"`
	Collection     string `json:"collection"`
	ID             string `json:"id"`
	Type           string `json:"type"`
	CreatedAt      string `json:"created_at"`
	Encoding       string `json:"encoding"`
	FirstMessageID string `json:"first_message_id"`
}

// profileQuery is what every Profile API request names.
type profileQuery struct {
	profile int64
	include map[string]bool
	limit   int
	after   string
}

// profileEndpoint serves one Profile API route: it finds the profile the
// path names and answers fn's body as JSON, or the error in knit's shape.
func (s *Server) profileEndpoint(fn func(*gin.Context, profileQuery) (any, error)) gin.HandlerFunc {
	return func(c *gin.Context) {
		q, err := s.parseProfileQuery(c)
		var body any
		if err == nil {
			body, err = fn(c, q)
		}
		if err != nil {
			httpx.Error(c, s.log, err)
			return
		}
		c.JSON(http.StatusOK, body)
	}
}

func (s *Server) parseProfileQuery(c *gin.Context) (profileQuery, error) {
	q := profileQuery{limit: profileDefaultLimit}
	if s.spaceID != "" && c.Param("space") != s.spaceID {
		return q, resolver.Errorf(resolver.ENotFound, "space %q was not found", c.Param("space"))
	}

	kind, value, ok := strings.Cut(c.Param("id"), ":")
	if !ok || kind == "" || value == "" {
		return q, resolver.Errorf(resolver.EInvalid,
			"profile id must be type:value, such as email:jane@example.com")
	}
	profile, err := s.profiles.Find(c.Request.Context(), resolver.NormaliseIdentifier(kind, value))
	if err != nil {
		return q, err
	}
	q.profile = profile

	if text := c.Query("limit"); text != "" {
		n, err := strconv.Atoi(text)
		if err != nil || n < 1 || n > profileMaxLimit {
			return q, resolver.Errorf(resolver.EInvalid,
				"limit must be a whole number from 1 to %d", profileMaxLimit)
		}
		q.limit = n
	}
	if include := c.Query("include"); include != "" {
		q.include = map[string]bool{}
		for _, key := range strings.Split(include, ",") {
			q.include[strings.TrimSpace(key)] = true
		}
	}
	if next := c.Query("next"); next != "" {
		raw, err := base64.RawURLEncoding.DecodeString(next)
		after, ok := strings.CutPrefix(string(raw), cursorPrefix)
		if err != nil || !ok {
			return q, resolver.Errorf(resolver.EInvalid, "next cursor %q is not valid", next)
		}
		q.after = after
	}
	return q, nil
}

func (q profileQuery) cursor(c *gin.Context, hasMore bool, last string) profileCursor {
	cursor := profileCursor{URL: c.Request.URL.EscapedPath(), HasMore: hasMore, Limit: q.limit}
	if hasMore {
		cursor.Next = base64.RawURLEncoding.EncodeToString([]byte(cursorPrefix + last))
	}
	return cursor
}

// profileTraits serves the profile's traits and, as a true boolean trait
// named after each audience, the audiences it is in. class=audience shows
// every audience, true or false, and nothing else; class=computed_trait has
// none.
func (s *Server) profileTraits(c *gin.Context, q profileQuery) (any, error) {
	traits, err := s.traitList(c, q.profile, c.Query("class"))
	if err != nil {
		return nil, err
	}

	verbose := c.Query("verbose") == "true"
	out := map[string]any{}
	last, hasMore := "", false
	for _, t := range traits {
		if (q.include != nil && !q.include[t.Key]) || t.Key <= q.after {
			continue
		}
		if len(out) == q.limit {
			hasMore = true
			break
		}
		out[t.Key] = traitValue(t, verbose)
		last = t.Key
	}
	return gin.H{"traits": out, "cursor": q.cursor(c, hasMore, last)}, nil
}

// traitList returns the traits of a class, sorted by key.
func (s *Server) traitList(c *gin.Context, profile int64, class string) ([]resolver.Trait, error) {
	ctx := c.Request.Context()
	var traits []resolver.Trait
	switch class {
	case "", "audience":
	case "computed_trait":
		return nil, nil
	default:
		return nil, resolver.Errorf(resolver.EInvalid,
			"class must be audience or computed_trait, not %q", class)
	}
	if class == "" {
		var err error
		if traits, err = s.profiles.Traits(ctx, profile); err != nil {
			return nil, err
		}
	}
	memberships, err := s.runner.Memberships(ctx, profile)
	if err != nil {
		return nil, err
	}
	for name, member := range memberships {
		if class == "" && !member {
			continue // the default view shows the audiences the profile is in
		}
		value, _ := json.Marshal(member)
		trait := resolver.Trait{Key: name, Value: value, Source: "audiences"}
		if run, err := s.runner.CurrentRun(ctx, name); err == nil {
			trait.UpdatedAt = run.EvaluatedAt
		}
		traits = append(traits, trait)
	}
	sort.Slice(traits, func(i, j int) bool { return traits[i].Key < traits[j].Key })
	return traits, nil
}

func traitValue(t resolver.Trait, verbose bool) any {
	if !verbose {
		return t.Value
	}
	return gin.H{
		"value": json.RawMessage(t.Value), "source_id": t.Source,
		"updated_at": audiences.FormatTime(t.UpdatedAt),
	}
}

func (s *Server) profileExternalIDs(c *gin.Context, q profileQuery) (any, error) {
	records, err := s.profiles.Identifiers(c.Request.Context(), q.profile)
	if err != nil {
		return nil, err
	}

	data := []externalID{}
	last, hasMore := "", false
	for _, r := range records {
		key := r.Type + "\x00" + r.Value
		if (q.include != nil && !q.include[r.Type]) || key <= q.after {
			continue
		}
		if len(data) == q.limit {
			hasMore = true
			break
		}
		data = append(data, externalID{
			SourceID: r.Source, Collection: "users", ID: r.Value, Type: r.Type,
			CreatedAt: audiences.FormatTime(r.FirstSeen), Encoding: "none",
			FirstMessageID: r.FirstMessageID,
		})
		last = key
	}
	return gin.H{"data": data, "cursor": q.cursor(c, hasMore, last)}, nil
}

// historyEntry is one identity decision as GET .../merges shows it.
type historyEntry struct {
	Kind           string `json:"kind"`
	Description    string `json:"description"`
	MessageID      string `json:"message_id"`
	Identifier     string `json:"identifier,omitempty"`
	OtherProfileID *int64 `json:"other_profile_id,omitempty"`
	Rule           string `json:"rule"`
	EventTimestamp string `json:"event_timestamp"`
	DecidedAt      string `json:"decided_at"`
}

// profileHistory serves the profile's identity history, oldest first: every
// creation, attachment, merge and dropped identifier with the message and
// rule behind it. next pages on by the last entry's position.
func (s *Server) profileHistory(c *gin.Context, q profileQuery) (any, error) {
	records, err := s.profiles.History(c.Request.Context(), q.profile)
	if err != nil {
		return nil, err
	}

	data := []historyEntry{}
	last, hasMore := "", false
	for _, r := range records {
		position := fmt.Sprintf("%020d", r.ID)
		if position <= q.after {
			continue
		}
		if len(data) == q.limit {
			hasMore = true
			break
		}
		data = append(data, historyEntry{
			Kind: r.Kind, Description: r.Explain(), MessageID: r.MessageID,
			Identifier: r.Identifier, OtherProfileID: r.OtherProfileID, Rule: r.Rule,
			EventTimestamp: audiences.FormatTime(time.UnixMilli(r.EventMS)),
			DecidedAt:      audiences.FormatTime(time.UnixMilli(r.AtMS)),
		})
		last = position
	}
	return gin.H{"data": data, "cursor": q.cursor(c, hasMore, last)}, nil
}
