package localenv

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
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
