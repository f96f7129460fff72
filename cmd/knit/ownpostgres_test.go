package main

import (
	"database/sql"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
)

// ownPostgres is a throwaway PostgreSQL server that a test starts in a
// temporary folder on a free port of 127.0.0.1, and stops, starts and
// reconfigures at will. The shared server on 5432 is never touched.
type ownPostgres struct {
	bin  string // folder of initdb and pg_ctl
	root string // holds data/, the log and the socket
	port string
	// cred runs the server as the postgres user when the test runs as
	// root, which initdb and pg_ctl refuse.
	cred *syscall.Credential
}

// mustOwnPostgres creates and starts a server; it is stopped and removed
// when the test ends.
func mustOwnPostgres(t *testing.T) *ownPostgres {
	t.Helper()
	p := &ownPostgres{bin: postgresBin(t)}
	_, port, _ := strings.Cut(mustFreeAddr(t), ":")
	p.port = port
	root, err := os.MkdirTemp("", "knit-pg-")
	if err != nil {
		t.Fatal(err)
	}
	p.root = root
	t.Cleanup(func() { _ = os.RemoveAll(root) })
	if os.Geteuid() == 0 {
		p.cred = mustPostgresUser(t, root)
	}
	p.run(t, "initdb", "-D", p.data(), "-U", "postgres", "--auth=trust", "--no-sync",
		"-E", "UTF8", "--locale=C")
	p.start(t)
	t.Cleanup(func() {
		_ = p.command("pg_ctl", "-D", p.data(), "-m", "immediate", "-w", "stop").Run()
	})
	return p
}

// postgresBin finds the folder of PostgreSQL's server programs.
func postgresBin(t *testing.T) string {
	t.Helper()
	dirs, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
	slices.Sort(dirs)
	if len(dirs) > 0 {
		return dirs[len(dirs)-1]
	}
	if path, err := exec.LookPath("pg_ctl"); err == nil {
		return filepath.Dir(path)
	}
	t.Fatal("no PostgreSQL server programs (initdb, pg_ctl): install postgresql")
	return ""
}

// mustPostgresUser gives root to the postgres user and returns the
// credential to run the server programs with.
func mustPostgresUser(t *testing.T, root string) *syscall.Credential {
	t.Helper()
	u, err := user.Lookup("postgres")
	if err != nil {
		t.Fatalf("running as root, and initdb refuses root: %v", err)
	}
	uid, _ := strconv.Atoi(u.Uid)
	gid, _ := strconv.Atoi(u.Gid)
	if err := os.Chown(root, uid, gid); err != nil {
		t.Fatal(err)
	}
	return &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}
}

func (p *ownPostgres) data() string { return filepath.Join(p.root, "data") }

// dsn names the server's postgres database.
func (p *ownPostgres) dsn() string {
	return "postgres://postgres@127.0.0.1:" + p.port + "/postgres?sslmode=disable"
}

func (p *ownPostgres) command(program string, args ...string) *exec.Cmd {
	cmd := exec.Command(filepath.Join(p.bin, program), args...)
	cmd.Dir = p.root
	if p.cred != nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: p.cred}
	}
	return cmd
}

func (p *ownPostgres) run(t *testing.T, program string, args ...string) {
	t.Helper()
	if out, err := p.command(program, args...).CombinedOutput(); err != nil {
		log, _ := os.ReadFile(filepath.Join(p.root, "server.log"))
		t.Fatalf("%s %v: %v\n%s\n%s", program, args, err, out, log)
	}
}

// start starts the server and waits until it takes connections.
func (p *ownPostgres) start(t *testing.T) {
	t.Helper()
	p.run(t, "pg_ctl", "-D", p.data(), "-l", filepath.Join(p.root, "server.log"),
		"-w", "-t", "60", "-o", "-p "+p.port+" -k "+p.root+
			" -c listen_addresses=127.0.0.1 -c fsync=off", "start")
}

// stop shuts the server down as an operator's restart does (fast:
// sessions are ended).
func (p *ownPostgres) stop(t *testing.T) {
	t.Helper()
	p.run(t, "pg_ctl", "-D", p.data(), "-w", "-m", "fast", "stop")
}

// exec runs statements as the superuser, in a session that stays
// writable whatever the server's defaults say.
func (p *ownPostgres) exec(t *testing.T, stmts ...string) {
	t.Helper()
	db, err := sql.Open("pgx", p.dsn()+"&default_transaction_read_only=off")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	for _, stmt := range stmts {
		if _, err := db.Exec(stmt); err != nil {
			t.Fatalf("%s: %v", stmt, err)
		}
	}
}
