package pgroup

import (
	"os/exec"
	"syscall"
	"testing"
	"time"
)

func TestStatPgrp(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want int
		ok   bool
	}{
		{"23 (sleep) S 1 7 7 0 -1", 7, true},
		{"23 (a b) c) Z 1 9 9 0", 9, true},
		{"23 (sleep", 0, false},
		{"23 (sleep) S 1", 0, false},
	} {
		got, ok := statPgrp([]byte(tc.in))
		if got != tc.want || ok != tc.ok {
			t.Errorf("statPgrp(%q) = %d, %t; want %d, %t", tc.in, got, ok, tc.want, tc.ok)
		}
	}
}

// A group whose member lives on is not gone; killed, it is, once every
// member (a grandchild too) is reaped.
func TestGone(t *testing.T) {
	c := exec.Command("sh", "-c", "sleep 60 & wait")
	c.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := c.Start(); err != nil {
		t.Fatal(err)
	}
	pgid := c.Process.Pid
	if Gone(pgid, 100*time.Millisecond) {
		t.Fatal("Gone: true while the group runs")
	}
	syscall.Kill(-pgid, syscall.SIGKILL)
	go c.Wait()
	if !Gone(pgid, 5*time.Second) {
		t.Error("Gone: the killed group is still there after 5s")
	}
}
