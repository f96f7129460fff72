package web

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"

	"github.com/gin-gonic/gin"
	"go.yaml.in/yaml/v3"

	"github.com/knit-cdp/knit/audiences"
	"github.com/knit-cdp/knit/resolver"
	"github.com/knit-cdp/knit/web/httpx"
)

const (
	defaultPageSize = 100
	maxPageSize     = 1000
)

// audienceSummary is one entry of GET /audiences.
type audienceSummary struct {
	Name        string                 `json:"name"`
	Description string                 `json:"description"`
	Schedule    string                 `json:"schedule"`
	Attributes  []string               `json:"attributes"`
	Size        int                    `json:"size"`
	ComputedAt  *string                `json:"computed_at"`
	LastRun     *audiences.Run         `json:"last_run"`
	Deliveries  *audiences.OutboxStats `json:"deliveries,omitempty"`
}

func (s *Server) listAudiences(c *gin.Context) {
	summaries, err := s.summaries(c)
	if err != nil {
		httpx.Error(c, s.log, err)
		return
	}
	c.JSON(http.StatusOK, gin.H{"audiences": summaries})
}

// summaries describes every audience with its current size and last run.
func (s *Server) summaries(c *gin.Context) ([]audienceSummary, error) {
	ctx := c.Request.Context()
	var out []audienceSummary
	for _, def := range s.runner.Definitions() {
		summary := audienceSummary{
			Name: def.Name, Description: def.Description,
			Schedule: def.Schedule, Attributes: def.Attributes(),
		}
		if current, err := s.runner.CurrentRun(ctx, def.Name); err == nil {
			summary.Size = current.Size
			computed := audiences.FormatTime(current.EvaluatedAt)
			summary.ComputedAt = &computed
		} else if resolver.ErrorCode(err) != resolver.ENotFound {
			return nil, err
		}
		if len(def.Destinations) > 0 {
			stats, err := s.runner.Outbox(ctx, def.Name)
			if err != nil {
				return nil, err
			}
			summary.Deliveries = &stats
		}
		if last, err := s.runner.LastRun(ctx, def.Name); err == nil {
			summary.LastRun = &last
		} else if resolver.ErrorCode(err) != resolver.ENotFound {
			return nil, err
		}
		out = append(out, summary)
	}
	return out, nil
}

// audiencePage is the body of GET /audiences/{name}.
type audiencePage struct {
	Name       string             `json:"name"`
	ComputedAt string             `json:"computed_at"`
	Size       int                `json:"size"`
	Members    []audiences.Member `json:"members"`
	Next       *string            `json:"next"`
}

// getAudience serves /audiences/{name} as paged JSON and
// /audiences/{name}.csv as a streamed download.
func (s *Server) getAudience(c *gin.Context) {
	name := c.Param("name")
	if base, isCSV := strings.CutSuffix(name, ".csv"); isCSV {
		s.downloadCSV(c, base)
		return
	}

	limit, err := pageSize(c.Query("limit"))
	if err != nil {
		httpx.Error(c, s.log, err)
		return
	}
	page, err := s.runner.Members(c.Request.Context(), name, c.Query("next"), limit)
	if err != nil {
		httpx.Error(c, s.log, err)
		return
	}

	if notModified(c, fmt.Sprintf("%s/%d/%d/%d/%s", name, page.Run.ID, page.Run.Size,
		limit, c.Query("next"))) {
		return
	}
	body := audiencePage{
		Name: name, ComputedAt: audiences.FormatTime(page.Run.EvaluatedAt),
		Size:    page.Run.Size,
		Members: page.Members,
	}
	if body.Members == nil {
		body.Members = []audiences.Member{}
	}
	if page.Next != "" {
		body.Next = &page.Next
	}
	c.JSON(http.StatusOK, body)
}

func pageSize(text string) (int, error) {
	if text == "" {
		return defaultPageSize, nil
	}
	n, err := strconv.Atoi(text)
	if err != nil || n < 1 || n > maxPageSize {
		return 0, resolver.Errorf(resolver.EInvalid,
			"limit must be a whole number from 1 to %d", maxPageSize)
	}
	return n, nil
}

func (s *Server) downloadCSV(c *gin.Context, name string) {
	ctx := c.Request.Context()
	// Check before the first byte so a missing audience is still a JSON 404.
	run, err := s.runner.CurrentRun(ctx, name)
	if err != nil {
		httpx.Error(c, s.log, err)
		return
	}

	opts, err := csvOptions(c)
	if err != nil {
		httpx.Error(c, s.log, err)
		return
	}
	out := &download{c: c, filename: csvFilename(name, run)}
	// The run the file holds, which a run committed since may have replaced.
	opts.OnRun = func(held audiences.Run) { out.filename = csvFilename(name, held) }
	err = s.runner.WriteCSVWith(ctx, out, name, opts)
	switch {
	case err != nil && !out.started:
		httpx.Error(c, s.log, err) // a bad option: nothing is sent yet
	case err != nil:
		// The status is sent; all that is left is to cut the stream short
		// so the client sees an incomplete download, and to log why.
		s.log.ErrorContext(c.Request.Context(), "csv export failed", "audience", name, "error", err)
		panic(http.ErrAbortHandler)
	}
}

// csvOptions reads layout, columns, bom and hash_email from the query; a
// yes/no option that is neither is an error, never a silent no.
func csvOptions(c *gin.Context) (audiences.CSVOptions, error) {
	opts := audiences.CSVOptions{Layout: c.Query("layout"), Columns: splitNames(c.Query("columns"))}
	for _, flag := range []struct {
		name string
		dest *bool
	}{{"bom", &opts.BOM}, {"hash_email", &opts.HashEmail}} {
		switch strings.ToLower(c.Query(flag.name)) {
		case "", "0", "false", "no":
		case "1", "true", "yes":
			*flag.dest = true
		default:
			return opts, resolver.Errorf(resolver.EInvalid,
				"%s must be 1 or 0, not %q", flag.name, c.Query(flag.name))
		}
	}
	return opts, nil
}

// csvFilename names the download of an audience's result of run.
func csvFilename(name string, run audiences.Run) string {
	return fmt.Sprintf("%s-%s.csv", name, run.EvaluatedAt.Format("20060102-150405"))
}

// download sends the attachment headers with its first byte, so that an
// error found before any output can still be answered as JSON.
type download struct {
	c        *gin.Context
	filename string
	started  bool
}

func (d *download) Write(p []byte) (int, error) {
	if !d.started {
		d.started = true
		d.c.Header("Content-Type", "text/csv; charset=utf-8")
		d.c.Header("Content-Disposition", `attachment; filename="`+d.filename+`"`)
		d.c.Header("Cache-Control", "no-store")
		d.c.Status(http.StatusOK)
	}
	return d.c.Writer.Write(p)
}

func (s *Server) runAudience(c *gin.Context) {
	run, err := s.runner.Run(c.Request.Context(), c.Param("name"))
	if err != nil && run.ID == 0 {
		httpx.Error(c, s.log, err)
		return
	}
	status := http.StatusOK
	if run.Status != audiences.StatusOK {
		status = http.StatusInternalServerError
	}
	c.JSON(status, run)
}

// notModified sets a strong ETag for the representation named by key and
// answers 304 when the client already has it (If-None-Match).
func notModified(c *gin.Context, key string) bool {
	sum := sha256.Sum256([]byte(key))
	tag := `"` + hex.EncodeToString(sum[:12]) + `"`
	c.Header("ETag", tag)
	for _, given := range strings.Split(c.GetHeader("If-None-Match"), ",") {
		given = strings.TrimPrefix(strings.TrimSpace(given), "W/")
		if given == tag || given == "*" {
			c.Status(http.StatusNotModified)
			c.Abort()
			return true
		}
	}
	return false
}

// changesPage is the body of GET /audiences/{name}/changes.
type changesPage struct {
	Name       string             `json:"name"`
	ComputedAt *string            `json:"computed_at"`
	Changes    []audiences.Change `json:"changes"`
	Next       string             `json:"next"`
	HasMore    bool               `json:"has_more"`
}

// audienceChanges serves who entered and who left the audience after the
// cursor in since, oldest first; next is the cursor to poll with.
func (s *Server) audienceChanges(c *gin.Context) {
	name := c.Param("name")
	limit, err := pageSize(c.Query("limit"))
	if err != nil {
		httpx.Error(c, s.log, err)
		return
	}
	page, err := s.runner.Changes(c.Request.Context(), name, c.Query("since"), limit)
	if err != nil {
		httpx.Error(c, s.log, err)
		return
	}
	body := changesPage{Name: name, Changes: page.Changes, Next: page.Next, HasMore: page.HasMore}
	if body.Changes == nil {
		body.Changes = []audiences.Change{}
	}
	runID := int64(0)
	if run, err := s.runner.CurrentRun(c.Request.Context(), name); err == nil {
		computed := audiences.FormatTime(run.EvaluatedAt)
		body.ComputedAt, runID = &computed, run.ID
	}
	if notModified(c, fmt.Sprintf("changes/%s/%s/%d/%s/%t/%d", name, c.Query("since"),
		limit, page.Next, page.HasMore, runID)) {
		return
	}
	c.JSON(http.StatusOK, body)
}

// previewAudience computes the audience defined in the body (the YAML of
// one audience, as in the config file; JSON is YAML too) and answers its
// size and a sample of members. Unknown keys are refused; in_audience may
// name any configured audience. Nothing is saved.
func (s *Server) previewAudience(c *gin.Context) {
	body, err := io.ReadAll(io.LimitReader(c.Request.Body, 64*1024))
	if err != nil {
		httpx.Error(c, s.log, fmt.Errorf("read definition: %w", err))
		return
	}
	var def audiences.Definition
	decoder := yaml.NewDecoder(bytes.NewReader(body))
	decoder.KnownFields(true) // a misspelt key must not widen the audience
	if err := decoder.Decode(&def); err != nil {
		httpx.Error(c, s.log, resolver.Errorf(resolver.EInvalid,
			"the body must be one audience definition in YAML or JSON: %v", err))
		return
	}
	size, sample, err := s.runner.PreviewDefinition(c.Request.Context(), def, 10)
	if err != nil {
		httpx.Error(c, s.log, err)
		return
	}
	if sample == nil {
		sample = []audiences.Member{}
	}
	c.JSON(http.StatusOK, gin.H{"name": def.Name, "size": size, "sample": sample})
}
