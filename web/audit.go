package web

import (
	"bytes"
	"encoding/json"
	"maps"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/knit-cdp/knit/resolver"
	"github.com/knit-cdp/knit/web/httpx"
)

// auditPageSize is how many entries the console's audit log page shows.
const auditPageSize = 50

// SetAuditLog lets GET /audit and the console's audit log page read log;
// without it they answer 404.
func (s *Server) SetAuditLog(log *resolver.AuditLog) { s.audit = log }

// auditBody is the body of GET /audit.
type auditBody struct {
	Entries []resolver.AuditEntry `json:"entries"`
	Next    *string               `json:"next"`
}

// listAudit serves the audit log as JSON, newest first; next pages on.
func (s *Server) listAudit(c *gin.Context) {
	if s.audit == nil {
		httpx.Error(c, s.log, resolver.Errorf(resolver.ENotFound,
			"the audit log is not enabled on this server"))
		return
	}
	limit, err := pageSize(c.Query("limit"))
	if err != nil {
		httpx.Error(c, s.log, err)
		return
	}
	page, err := s.audit.List(c.Request.Context(), c.Query("next"), limit)
	if err != nil {
		httpx.Error(c, s.log, err)
		return
	}
	body := auditBody{Entries: page.Entries}
	if body.Entries == nil {
		body.Entries = []resolver.AuditEntry{}
	}
	if page.Next != "" {
		body.Next = &page.Next
	}
	c.JSON(http.StatusOK, body)
}

// auditView is the console's audit log page.
type auditView struct {
	Entries []auditLine
	Next    string
	First   bool // the newest page
}

// auditLine is one entry as the console writes it.
type auditLine struct {
	resolver.AuditEntry
	When   time.Time
	Detail string
}

func (c *console) auditPage(ctx *gin.Context) {
	if c.server.audit == nil {
		ctx.String(http.StatusNotFound, "the audit log is not enabled on this server")
		return
	}
	found, err := c.server.audit.List(ctx.Request.Context(), ctx.Query("next"), auditPageSize)
	if resolver.ErrorCode(err) == resolver.EInvalid {
		ctx.String(http.StatusBadRequest, resolver.ErrorMessage(err))
		return
	}
	if err != nil {
		c.adminFailed(ctx, err)
		return
	}
	view := auditView{Next: found.Next, First: ctx.Query("next") == ""}
	for _, e := range found.Entries {
		view.Entries = append(view.Entries, auditLine{AuditEntry: e,
			When: time.UnixMilli(e.AtMS).UTC(), Detail: detailText(e.Detail)})
	}
	c.render(ctx, http.StatusOK, "audit", page{Title: "Audit log", SignedIn: true,
		Nav: "settings", Data: view})
}

// detailText writes an entry's detail as "key: value" pairs.
func detailText(raw json.RawMessage) string {
	var fields map[string]any
	if err := json.Unmarshal(raw, &fields); err != nil || len(fields) == 0 {
		return ""
	}
	var parts []string
	for _, key := range slices.Sorted(maps.Keys(fields)) {
		var value bytes.Buffer
		enc := json.NewEncoder(&value)
		enc.SetEscapeHTML(false) // the template escapes
		_ = enc.Encode(fields[key])
		text := strings.TrimSpace(value.String())
		if unquoted, ok := fields[key].(string); ok {
			text = unquoted
		}
		parts = append(parts, key+": "+text)
	}
	return strings.Join(parts, ", ")
}
