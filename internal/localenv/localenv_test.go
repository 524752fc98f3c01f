package localenv

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// Only the processes an earlier run recorded are stopped, never another
// program whose command line names the directory (a tail -f of a log).
func TestKillStaleStopsOnlyRecordedProcesses(t *testing.T) {
	dir := t.TempDir()
	start := func() *exec.Cmd {
		c := exec.Command("sh", "-c", "sleep 60", filepath.Join(dir, "manager.log"))
		if err := c.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = c.Process.Kill(); _ = c.Wait() })
		return c
	}
	recorded, bystander := start(), start()
	_, startTime, ok := procStat(recorded.Process.Pid)
	if !ok {
		t.Fatal("no /proc stat")
	}
	if err := os.WriteFile(filepath.Join(dir, pidsFile), []byte(fmt.Sprintf("%d %s\n", recorded.Process.Pid, startTime)), 0o600); err != nil {
		t.Fatal(err)
	}
	if n := killStale(dir); n != 1 {
		t.Fatalf("killed %d processes, want 1", n)
	}
	err := recorded.Wait()
	if ws, ok := recorded.ProcessState.Sys().(syscall.WaitStatus); !ok || ws.Signal() != syscall.SIGKILL {
		t.Fatalf("the recorded process was not killed: %v", err)
	}
	time.Sleep(100 * time.Millisecond)
	if err := bystander.Process.Signal(syscall.Signal(0)); err != nil {
		t.Fatalf("the bystander was killed: %v", err)
	}
}

// A port clash names the run-local flag that moves the port.
func TestPortClashNamesTheFlag(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = l.Close() }()
	err = portFree(l.Addr().String(), "proxy-address")
	if err == nil || !strings.Contains(err.Error(), "RUN_LOCAL_FLAGS=--proxy-address=127.0.0.1:PORT") {
		t.Fatalf("portFree on a taken port = %v", err)
	}
	if err := portFree("127.0.0.1:0", "proxy-address"); err != nil {
		t.Fatalf("portFree on a free port = %v", err)
	}
}
