package web

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/jmoiron/sqlx"

	"github.com/knit-cdp/knit/resolver"
	"github.com/knit-cdp/knit/resolver/sqldb"
	"github.com/knit-cdp/knit/web/httpx"
)

const (
	tokenSettingKey = "api_token_sha256"
	sessionCookie   = "knit_session"
	sessionLifetime = 12 * time.Hour
)

// Auth checks the API token and console sessions. It keeps only hashes:
// the token itself is never stored.
type Auth struct {
	db  *sqldb.DB
	now func() time.Time
	// configured is the hash of KNIT_API_TOKEN; nil means the token is the
	// one whose hash the database holds, read at every check so that
	// `knit token reset` takes effect on a running server.
	configured *[32]byte
	// adminPassword is the hash of KNIT_ADMIN_PASSWORD, which signs in to
	// the console only; nil when none is set.
	adminPassword *[32]byte
}

// SetAdminPassword lets the console's sign-in form take password as well
// as the API token. The password is never an API token; a console session
// opened with it reads the API as any console session does. An empty
// password sets none. Changing it ends every session.
func (a *Auth) SetAdminPassword(password string) {
	if password == "" {
		a.adminPassword = nil
		return
	}
	hash := sha256.Sum256([]byte(password))
	a.adminPassword = &hash
}

// validPassword compares a presented password with the admin password in
// constant time.
func (a *Auth) validPassword(password string) bool {
	if a.adminPassword == nil || password == "" {
		return false
	}
	given := sha256.Sum256([]byte(password))
	return subtle.ConstantTimeCompare(given[:], a.adminPassword[:]) == 1
}

// EnsureToken prepares authentication. A configured token (KNIT_API_TOKEN)
// wins. Otherwise the token whose hash an earlier start stored is used, and
// on the very first start a new token is generated, its hash stored, and the
// token returned as generated so the caller can print it once.
func EnsureToken(ctx context.Context, db *sqldb.DB, configured string,
	now func() time.Time) (auth *Auth, generated string, err error) {
	auth = &Auth{db: db, now: now}
	if configured != "" {
		hash := sha256.Sum256([]byte(configured))
		auth.configured = &hash
		return auth, "", nil
	}

	_, err = auth.storedHash(ctx)
	if err == nil {
		return auth, "", nil
	}
	if !sqldb.IsNoRows(err) {
		return nil, "", err
	}
	// The audit log names knit itself as the one who made the first token.
	generated, err = ResetToken(resolver.WithActor(ctx, resolver.Actor{Name: "system"}), db)
	if err != nil {
		return nil, "", err
	}
	return auth, generated, nil
}

// tokenHash returns the hash of the token in force.
func (a *Auth) tokenHash(ctx context.Context) ([32]byte, error) {
	if a.configured != nil {
		return *a.configured, nil
	}
	return a.storedHash(ctx)
}

func (a *Auth) storedHash(ctx context.Context) ([32]byte, error) {
	var hash [32]byte
	var stored string
	err := a.db.GetContext(ctx, &stored, a.db.Rebind(
		`SELECT value FROM settings WHERE key = ?`), tokenSettingKey)
	if err != nil {
		return hash, fmt.Errorf("read API token hash: %w", err)
	}
	decoded, err := hex.DecodeString(stored)
	if err != nil || len(decoded) != len(hash) {
		return hash, fmt.Errorf("stored API token hash is corrupt")
	}
	copy(hash[:], decoded)
	return hash, nil
}

// ResetToken generates a new API token, stores its hash in place of any
// earlier one, signs every console session out, writes the audit log under
// the actor ctx carries, and returns the token, which is shown this once.
// KNIT_API_TOKEN, when set, still wins over it.
func ResetToken(ctx context.Context, db *sqldb.DB) (string, error) {
	token := "knit_" + randomHex(24)
	hash := sha256.Sum256([]byte(token))

	err := db.WithTx(ctx, func(tx *sqlx.Tx) error {
		_, err := tx.ExecContext(ctx, tx.Rebind(`INSERT INTO settings (key, value)
			VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value`),
			tokenSettingKey, hex.EncodeToString(hash[:]))
		if err != nil {
			return fmt.Errorf("store API token hash: %w", err)
		}
		if _, err := tx.ExecContext(ctx, `DELETE FROM web_sessions`); err != nil {
			return fmt.Errorf("end console sessions: %w", err)
		}
		return resolver.RecordAudit(ctx, tx, time.Now(), resolver.AuditTokenReset,
			"api_token", map[string]any{"sessions_ended": true})
	})
	if err != nil {
		return "", err
	}
	return token, nil
}

func randomHex(n int) string {
	buf := make([]byte, n)
	if _, err := rand.Read(buf); err != nil {
		panic(fmt.Sprintf("crypto/rand failed: %v", err)) // never on Linux
	}
	return hex.EncodeToString(buf)
}

// ValidToken compares a presented token with the one in force, in constant
// time. It is false when the token cannot be read.
func (a *Auth) ValidToken(ctx context.Context, token string) bool {
	if token == "" {
		return false
	}
	want, err := a.tokenHash(ctx)
	if err != nil {
		return false
	}
	given := sha256.Sum256([]byte(token))
	return subtle.ConstantTimeCompare(given[:], want[:]) == 1
}

// tokenFromRequest reads a token sent as "Authorization: Bearer T" or as
// the HTTP Basic user name (Segment's Profile API style, curl -u T:).
func tokenFromRequest(r *http.Request) string {
	header := r.Header.Get("Authorization")
	if scheme, rest, ok := strings.Cut(header, " "); ok && strings.EqualFold(scheme, "Bearer") {
		return strings.TrimSpace(rest)
	}
	if user, _, ok := r.BasicAuth(); ok {
		return user
	}
	return ""
}

// Require lets a request through with a valid token or console session and
// answers 401 otherwise, saying whether the token was missing or wrong.
func (a *Auth) Require(c *gin.Context) {
	token := tokenFromRequest(c.Request)
	// A console session reads the API from the browser; changes need the
	// token (the console's own forms carry a CSRF token instead).
	safe := c.Request.Method == http.MethodGet || c.Request.Method == http.MethodHead
	if a.ValidToken(c.Request.Context(), token) {
		actAs(c, "api:token")
		c.Next()
		return
	}
	if openedWith, ok := a.session(c); token == "" && safe && ok {
		actAs(c, "console:"+openedWith)
		c.Next()
		return
	}
	c.Header("WWW-Authenticate", `Bearer realm="knit"`)
	if token != "" {
		httpx.Error(c, nil, resolver.Errorf(resolver.EUnauthorized,
			"the API token is not valid; use the token knit printed on its first "+
				"start, the value of KNIT_API_TOKEN, or one from `knit token reset`"))
		return
	}
	httpx.Error(c, nil, resolver.Errorf(resolver.EUnauthorized,
		"an API token is required: send Authorization: Bearer <token> "+
			"or the token as the HTTP Basic user name"))
}

// actAs names who the request acts for, for the audit log of what it
// changes: a kind of credential, never the credential.
func actAs(c *gin.Context, actor string) {
	c.Request = c.Request.WithContext(resolver.WithActor(c.Request.Context(),
		resolver.Actor{Name: actor, RequestID: httpx.RequestIDOf(c)}))
}

// Credentials a console session may be opened with, as sessions record them.
const (
	openedWithToken = "token"
	openedWithAdmin = "admin"
)

// credentialsHash names the credentials in force: the API token and the
// admin password. Sessions are stored with it, so changing either ends
// every session opened before.
func (a *Auth) credentialsHash(ctx context.Context) ([32]byte, error) {
	token, err := a.tokenHash(ctx)
	if err != nil || a.adminPassword == nil {
		return token, err
	}
	return sha256.Sum256(append(token[:], a.adminPassword[:]...)), nil
}

// startSession records a new console session, opened with the credential
// openedWith names, and sets its cookie.
func (a *Auth) startSession(c *gin.Context, openedWith string) error {
	id := randomHex(32)
	hash := sha256.Sum256([]byte(id))
	now := a.now()
	ctx := c.Request.Context()
	token, err := a.credentialsHash(ctx)
	if err != nil {
		return err
	}

	_, err = a.db.ExecContext(ctx, a.db.Rebind(
		`DELETE FROM web_sessions WHERE expires_ms <= ?`), now.UnixMilli())
	if err != nil {
		return fmt.Errorf("forget expired sessions: %w", err)
	}
	_, err = a.db.ExecContext(ctx, a.db.Rebind(`INSERT INTO web_sessions
		(id_hash, expires_ms, token_sha256, opened_with) VALUES (?, ?, ?, ?)`),
		hex.EncodeToString(hash[:]), now.Add(sessionLifetime).UnixMilli(),
		hex.EncodeToString(token[:]), openedWith)
	if err != nil {
		return fmt.Errorf("store session: %w", err)
	}
	// MaxAge, not Expires: the browser counts from now on its own clock,
	// so a server clock pinned elsewhere (--clock) cannot expire the cookie.
	http.SetCookie(c.Writer, &http.Cookie{
		Name: sessionCookie, Value: id, Path: "/", MaxAge: int(sessionLifetime.Seconds()),
		HttpOnly: true, SameSite: http.SameSiteLaxMode, Secure: isHTTPS(c.Request),
	})
	return nil
}

func (a *Auth) validSession(c *gin.Context) bool {
	_, ok := a.session(c)
	return ok
}

// session tells whether the request carries a live console session, and
// which credential opened it.
func (a *Auth) session(c *gin.Context) (openedWith string, ok bool) {
	cookie, err := c.Request.Cookie(sessionCookie)
	if err != nil || cookie.Value == "" {
		return "", false
	}
	hash := sha256.Sum256([]byte(cookie.Value))
	token, err := a.credentialsHash(c.Request.Context())
	if err != nil {
		return "", false
	}

	// A session opened under an earlier API token or admin password no
	// longer counts.
	var row struct {
		Expires    int64  `db:"expires_ms"`
		OpenedWith string `db:"opened_with"`
	}
	err = a.db.GetContext(c.Request.Context(), &row, a.db.Rebind(`SELECT expires_ms,
		opened_with FROM web_sessions WHERE id_hash = ? AND token_sha256 = ?`),
		hex.EncodeToString(hash[:]), hex.EncodeToString(token[:]))
	if err != nil || row.Expires <= a.now().UnixMilli() {
		return "", false
	}
	return row.OpenedWith, true
}

// endSession forgets the session and clears its cookie.
func (a *Auth) endSession(c *gin.Context) {
	if cookie, err := c.Request.Cookie(sessionCookie); err == nil {
		hash := sha256.Sum256([]byte(cookie.Value))
		_, _ = a.db.ExecContext(c.Request.Context(), a.db.Rebind(
			`DELETE FROM web_sessions WHERE id_hash = ?`), hex.EncodeToString(hash[:]))
	}
	http.SetCookie(c.Writer, &http.Cookie{
		Name: sessionCookie, Value: "", Path: "/", MaxAge: -1,
		HttpOnly: true, SameSite: http.SameSiteLaxMode, Secure: isHTTPS(c.Request),
	})
}

func isHTTPS(r *http.Request) bool {
	return r.TLS != nil || strings.EqualFold(r.Header.Get("X-Forwarded-Proto"), "https")
}
