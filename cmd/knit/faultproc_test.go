package main

import (
	"bytes"
	"errors"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"syscall"
	"testing"
	"time"
)

// faultKey is the write key of the fault tests' tracking API.
const faultKey = "fault-key"

// mustBuildKnit builds the knit binary from this package's source, as the
// fleet test does, and returns its path.
func mustBuildKnit(t *testing.T) string {
	t.Helper()
	binary := filepath.Join(t.TempDir(), "knit")
	build := exec.Command("go", "build", "-o", binary, ".")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("build knit: %v\n%s", err, out)
	}
	return binary
}

// lockedBuffer collects a process's output; the test reads it while the
// process writes.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// knitProc is `knit serve` as an operating-system process that a fault
// test starts, kills and starts again on the same database and address.
type knitProc struct {
	binary string
	addr   string
	// args follow "serve --addr ADDR"; a test may change them between runs.
	args []string
	env  []string
	logs *lockedBuffer

	cmd    *exec.Cmd
	exited chan error
	starts int
}

// newKnitProc prepares `knit serve --db dsn args...` on a free address,
// with the fault tests' write key and API token. Cleanup kills a process
// still running and shows the logs of a failed test.
func newKnitProc(t *testing.T, binary, dsn string, args ...string) *knitProc {
	t.Helper()
	p := &knitProc{
		binary: binary, addr: mustFreeAddr(t), logs: &lockedBuffer{},
		args: append([]string{"--db", dsn}, args...),
		env: append(os.Environ(), "KNIT_WRITE_KEYS="+faultKey,
			"KNIT_API_TOKEN="+testToken, "KNIT_LOG_LEVEL=info"),
	}
	t.Cleanup(func() {
		if p.running() {
			_ = p.cmd.Process.Kill()
			<-p.exited
		}
		if t.Failed() {
			t.Logf("knit serve said (%d starts):\n%s", p.starts, tail(p.logs.String(), 8000))
		}
	})
	return p
}

func (p *knitProc) base() string { return "http://" + p.addr }

// start starts the process and waits until it answers /healthz.
func (p *knitProc) start(t *testing.T) {
	t.Helper()
	args := append([]string{"serve", "--addr", p.addr}, p.args...)
	p.cmd = exec.Command(p.binary, args...)
	p.cmd.Env = p.env
	p.cmd.Stdout, p.cmd.Stderr = p.logs, p.logs
	if err := p.cmd.Start(); err != nil {
		t.Fatalf("start knit: %v", err)
	}
	p.starts++
	exited := make(chan error, 1)
	p.exited = exited
	go func() { exited <- p.cmd.Wait() }()

	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		if resp, err := http.Get(p.base() + "/healthz"); err == nil {
			resp.Body.Close()
			return
		}
		select {
		case err := <-exited:
			exited <- err
			t.Fatalf("knit serve exited at start: %v", err)
		case <-time.After(20 * time.Millisecond):
		}
	}
	t.Fatalf("knit serve at %s did not answer /healthz", p.addr)
}

// running reports whether the process was started and has not exited.
func (p *knitProc) running() bool {
	if p.cmd == nil {
		return false
	}
	select {
	case err := <-p.exited:
		p.exited <- err
		return false
	default:
		return true
	}
}

// kill ends the process with SIGKILL, as a crash or the OOM killer would,
// and waits until it is gone.
func (p *knitProc) kill(t *testing.T) {
	t.Helper()
	if err := p.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatalf("kill knit: %v", err)
	}
	err := <-p.exited
	p.exited <- err
	var exit *exec.ExitError
	if !errors.As(err, &exit) || exit.Sys().(syscall.WaitStatus).Signal() != syscall.SIGKILL {
		t.Fatalf("knit ended with %v, want killed by SIGKILL", err)
	}
}

// signal sends sig to the process.
func (p *knitProc) signal(t *testing.T, sig os.Signal) {
	t.Helper()
	if err := p.cmd.Process.Signal(sig); err != nil {
		t.Fatalf("signal knit: %v", err)
	}
}

// wait waits for the process to exit on its own and returns how it ended.
func (p *knitProc) wait(t *testing.T, within time.Duration) error {
	t.Helper()
	select {
	case err := <-p.exited:
		p.exited <- err
		return err
	case <-time.After(within):
		t.Fatalf("knit serve did not exit within %s", within)
		return nil
	}
}

// stop stops the process with SIGTERM and requires a clean exit.
func (p *knitProc) stop(t *testing.T) {
	t.Helper()
	p.signal(t, syscall.SIGTERM)
	if err := p.wait(t, 30*time.Second); err != nil {
		t.Fatalf("knit serve exited with %v after SIGTERM, want 0", err)
	}
}

func tail(text string, n int) string {
	if len(text) <= n {
		return text
	}
	return "...\n" + text[len(text)-n:]
}
