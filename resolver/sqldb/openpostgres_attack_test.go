package sqldb_test

import (
	"context"
	"net"
	"os"
	"strings"
	"testing"

	"github.com/knit-cdp/knit/resolver/sqldb"
	"github.com/knit-cdp/knit/resolver/sqldb/sqltest"
)

// opServer returns the test server's URL, skipping without one.
func opServer(t *testing.T) string {
	t.Helper()
	server := os.Getenv(sqltest.PostgresEnv)
	if server == "" {
		t.Skipf("%s is not set", sqltest.PostgresEnv)
	}
	return server
}

// opWith adds query parameters to a URL.
func opWith(server, params string) string {
	if strings.Contains(server, "?") {
		return server + "&" + params
	}
	return server + "?" + params
}

// opShow reads a setting on n connections held at once, so that each
// answer comes from a session of its own.
func opShow(t *testing.T, db *sqldb.DB, setting string, n int) []string {
	t.Helper()
	ctx := context.Background()
	var values []string
	for range n {
		conn, err := db.Conn(ctx)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		var v string
		if err := conn.QueryRowContext(ctx, "SHOW "+setting).Scan(&v); err != nil {
			t.Fatal(err)
		}
		values = append(values, v)
	}
	return values
}

func opOpen(t *testing.T, url string) *sqldb.DB {
	t.Helper()
	db, err := sqldb.OpenPostgres(context.Background(), url)
	if err != nil {
		t.Fatalf("open %s: %v", url, err)
	}
	t.Cleanup(func() { _ = db.Close() })
	return db
}

// The URL's other parameters still reach every session next to jit off,
// and a postgresql:// URL opens as a postgres:// one.
func TestOpenPostgresKeepsTheURLsParameters(t *testing.T) {
	server := opServer(t)
	url := opWith(server, "search_path=pr_nowhere,public&application_name=pr_attack"+
		"&statement_timeout=1234&connect_timeout=5")
	db := opOpen(t, url)
	for _, want := range []struct{ setting, value string }{
		{"search_path", "pr_nowhere,public"}, {"application_name", "pr_attack"},
		{"statement_timeout", "1234ms"}, {"jit", "off"},
	} {
		for _, got := range opShow(t, db, want.setting, 3) {
			if got != want.value {
				t.Errorf("%s = %q, want %q", want.setting, got, want.value)
			}
		}
	}
	if !strings.HasPrefix(server, "postgres://") {
		return
	}
	other := opOpen(t, "postgresql://"+strings.TrimPrefix(server, "postgres://"))
	if got := opShow(t, other, "jit", 1)[0]; got != "off" {
		t.Errorf("postgresql:// session has jit %q", got)
	}
}

// jit=off in the URL and jit=on both hold on every connection of the pool.
func TestOpenPostgresLowerCaseJITInTheURLWins(t *testing.T) {
	server := opServer(t)
	for _, value := range []string{"on", "off"} {
		db := opOpen(t, opWith(server, "jit="+value))
		for i, got := range opShow(t, db, "jit", 4) {
			if got != value {
				t.Errorf("jit=%s in the URL: connection %d has jit %q", value, i, got)
			}
		}
	}
}

// A password in a URL that cannot be used never shows in the error.
func TestOpenPostgresErrorsHideThePassword(t *testing.T) {
	listener, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closed := listener.Addr().String()
	listener.Close()
	const secret = "pr-S3cr3t"
	for _, url := range []string{
		"postgres://pr_u:" + secret + "@127.0.0.1:notaport/test",
		"postgres://pr_u:" + secret + "@127.0.0.1:5432/test?sslmode=bogus",
		"postgres://pr_u:" + secret + "@127.0.0.1:5432/test?connect_timeout=soon",
		"postgres://pr_u:" + secret + "%40x%3Ay@127.0.0.1:5432/test?sslmode=bogus",
		"postgres://pr_u:" + secret + "@" + closed + "/test?sslmode=disable&connect_timeout=2",
		"postgres://pr_u:" + secret + "@127.0.0.1:5432/test?sslmode=disable&jit=maybe",
	} {
		_, err := sqldb.OpenPostgres(context.Background(), url)
		if err == nil {
			t.Errorf("%s opened", url)
			continue
		}
		if strings.Contains(err.Error(), secret) {
			t.Errorf("the error shows the password: %v", err)
		}
	}
}

// A password with characters a URL must escape is decoded and used: on
// the trusting local server the session opens as the role named.
func TestOpenPostgresEscapedPasswordAndUser(t *testing.T) {
	server := opServer(t)
	admin := opOpen(t, server)
	const role = "pr_attack_role"
	if _, err := admin.Exec(`CREATE ROLE ` + role + ` LOGIN PASSWORD 'p@ss:w/rd?#%&= x'`); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _, _ = admin.Exec(`DROP ROLE IF EXISTS ` + role) })
	rest := server[strings.Index(server, "@")+1:]
	scheme := server[:strings.Index(server, "://")+3]
	db := opOpen(t, scheme+role+":p%40ss%3Aw%2Frd%3F%23%25%26%3D%20x@"+rest)
	var user string
	if err := db.QueryRow("SELECT current_user").Scan(&user); err != nil {
		t.Fatal(err)
	}
	if user != role {
		t.Errorf("current_user %q, want %s", user, role)
	}
	if got := opShow(t, db, "jit", 1)[0]; got != "off" {
		t.Errorf("jit %q, want off", got)
	}
	_ = db.Close()
}
