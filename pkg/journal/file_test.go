package journal

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

func TestPrecreate(t *testing.T) {
	const mid = "0123456789abcdef0123456789abcdef"
	path := filepath.Join(t.TempDir(), mid, "system.journal")
	if err := Precreate(path, mid); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Size() != fileAllocation {
		t.Errorf("size %d, want %d", fi.Size(), fileAllocation)
	}
	// systemd's own reader must take it as a valid, empty, offline file.
	for _, args := range [][]string{{"--verify"}, {"--header"}} {
		out, err := exec.Command("journalctl", append([]string{"--file=" + path}, args...)...).CombinedOutput()
		if err != nil {
			t.Fatalf("journalctl %s: %v\n%s", args, err, out)
		}
		if args[0] == "--header" {
			for _, want := range []string{"Machine ID: " + mid, "State: OFFLINE", "Objects: 2", "Entry objects: 0", "Arena size: 8388344"} {
				if !strings.Contains(string(out), want) {
					t.Errorf("journalctl --header lacks %q:\n%s", want, out)
				}
			}
		}
	}
	// An existing file is kept.
	if err := os.WriteFile(path, []byte("x"), 0o640); err != nil {
		t.Fatal(err)
	}
	if err := Precreate(path, mid); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(path); string(b) != "x" {
		t.Errorf("existing file overwritten")
	}
}

func TestPrecreateBadMachineID(t *testing.T) {
	for _, mid := range []string{"", "xyz", "0123456789abcdef"} {
		if err := Precreate(filepath.Join(t.TempDir(), "j"), mid); err == nil {
			t.Errorf("Precreate with machine id %q: no error", mid)
		}
	}
}
