package userns

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

func TestParse(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want Range
		bad  bool
	}{
		{in: "268435456:65536", want: Range{268435456, 65536}},
		{in: "1:1", want: Range{1, 1}},
		{in: "0:65536", bad: true},
		{in: "65536:0", bad: true},
		{in: "65536", bad: true},
		{in: "x:1", bad: true},
		{in: "4294967295:2", bad: true},
		{in: "-1:2", bad: true},
	} {
		t.Run(tc.in, func(t *testing.T) {
			got, err := Parse(tc.in)
			if (err != nil) != tc.bad || got != tc.want {
				t.Fatalf("Parse(%q) = %v, %v; want %v, bad %v", tc.in, got, err, tc.want, tc.bad)
			}
			if err == nil && got.String() != tc.in {
				t.Errorf("String() = %q, want %q", got.String(), tc.in)
			}
		})
	}
}

func testRegistry(t *testing.T, blocks int) *Registry {
	t.Helper()
	return &Registry{Dir: t.TempDir(), First: 0x10000000, Blocks: blocks}
}

func TestAllocateExhaustRelease(t *testing.T) {
	g := testRegistry(t, 3)
	seen := map[Range]string{}
	for i := range 3 {
		owner := fmt.Sprintf("pod%d", i)
		r, err := g.Allocate(owner, nil)
		if err != nil {
			t.Fatal(err)
		}
		if r.Size != BlockSize || r.Base != g.First+uint32(i)*BlockSize {
			t.Errorf("block %d: got %v", i, r)
		}
		if o, dup := seen[r]; dup {
			t.Fatalf("%v given to %s and %s", r, o, owner)
		}
		seen[r] = owner
	}
	if _, err := g.Allocate("pod3", nil); !errors.Is(err, ErrExhausted) {
		t.Fatalf("4th allocation: err %v, want ErrExhausted", err)
	}
	second := Range{g.First + BlockSize, BlockSize}
	if err := g.Release("someone-else", second); err != nil {
		t.Fatal(err)
	}
	if _, err := g.Allocate("pod3", nil); !errors.Is(err, ErrExhausted) {
		t.Fatalf("a release by a non-owner freed the block: %v", err)
	}
	if err := g.Release("pod1", second); err != nil {
		t.Fatal(err)
	}
	if r, err := g.Allocate("pod3", nil); err != nil || r != second {
		t.Fatalf("after release: got %v, %v; want %v", r, err, second)
	}
}

func TestAllocateRecord(t *testing.T) {
	g := testRegistry(t, 2)
	boom := errors.New("boom")
	if _, err := g.Allocate("a", func(Range) error { return boom }); !errors.Is(err, boom) {
		t.Fatalf("a failing record: err %v, want it", err)
	}
	var recorded Range
	r, err := g.Allocate("b", func(r Range) error {
		recorded = r
		// Under the lock: the entry is not there yet.
		if _, err := os.Stat(g.entry(r)); !os.IsNotExist(err) {
			t.Errorf("entry written before the record: %v", err)
		}
		return nil
	})
	if err != nil || r != recorded || r.Base != g.First {
		t.Fatalf("got %v, %v, recorded %v; want the first block, the one recorded", r, err, recorded)
	}
}

func TestStaleEntriesAreFree(t *testing.T) {
	g := testRegistry(t, 2)
	live := map[string]bool{"a": true, "b": true}
	g.InUse = func(owner string, r Range) bool { return live[owner] }
	ra, _ := g.Allocate("a", nil)
	if _, err := g.Allocate("b", nil); err != nil {
		t.Fatal(err)
	}
	delete(live, "a") // its pod was deleted without a release
	if r, err := g.Allocate("c", nil); err != nil || r != ra {
		t.Fatalf("got %v, %v; want a's stale %v", r, err, ra)
	}
}

func TestClaim(t *testing.T) {
	g := testRegistry(t, 4)
	r := Range{g.First + 2*BlockSize, BlockSize}
	if err := g.Claim("a", r); err != nil {
		t.Fatal(err)
	}
	if err := g.Claim("a", r); err != nil {
		t.Fatalf("claim again by its owner: %v", err)
	}
	if err := g.Claim("b", r); err == nil {
		t.Fatal("b claimed a's range")
	}
	for _, bad := range []Range{{g.First + 1, BlockSize}, {g.First, 10}, {g.First + 4*BlockSize, BlockSize}, {1, BlockSize}} {
		if err := g.Claim("b", bad); err == nil {
			t.Errorf("claimed %v, not a block", bad)
		}
	}
	if got, _ := g.Allocate("c", nil); got == r {
		t.Fatalf("allocated claimed %v", r)
	}
}

// TestConcurrentProcesses allocates from several processes at once: each
// block must go to one of them only.
func TestConcurrentProcesses(t *testing.T) {
	if dir := os.Getenv("USERNS_TEST_REGISTRY"); dir != "" {
		g := &Registry{Dir: dir, First: 0x10000000, Blocks: 64}
		for i := range 8 {
			r, err := g.Allocate(fmt.Sprintf("%d-%d", os.Getpid(), i), nil)
			if err != nil {
				t.Fatal(err)
			}
			fmt.Println(r)
		}
		return
	}
	dir := t.TempDir()
	const procs = 6
	outs := make([]*strings.Builder, procs)
	cmds := make([]*exec.Cmd, procs)
	for i := range cmds {
		outs[i] = &strings.Builder{}
		cmds[i] = exec.Command(os.Args[0], "-test.run=^TestConcurrentProcesses$", "-test.count=1")
		cmds[i].Env = append(os.Environ(), "USERNS_TEST_REGISTRY="+dir)
		cmds[i].Stdout = outs[i]
		if err := cmds[i].Start(); err != nil {
			t.Fatal(err)
		}
	}
	got := map[string]int{}
	for i, c := range cmds {
		if err := c.Wait(); err != nil {
			t.Fatalf("process %d: %v\n%s", i, err, outs[i])
		}
		for _, l := range strings.Split(outs[i].String(), "\n") {
			if _, err := Parse(l); err == nil {
				got[l]++
			}
		}
	}
	if len(got) != procs*8 {
		t.Errorf("%d distinct ranges, want %d", len(got), procs*8)
	}
	for r, n := range got {
		if n > 1 {
			t.Errorf("%s allocated %d times", r, n)
		}
	}
	ents, _ := os.ReadDir(dir)
	if len(ents) != procs*8+1 { // the entries and the lock
		t.Errorf("%d files in the registry, want %d", len(ents), procs*8+1)
	}
}

func TestNS(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root (run as root to create a user namespace for another uid range)")
	}
	r := Range{Base: 0x10000000, Size: BlockSize}
	f, err := r.NS()
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	// A tree idmapped with the namespace shows root's files as r.Base's.
	dir := t.TempDir()
	fd, err := unix.OpenTree(unix.AT_FDCWD, dir, unix.OPEN_TREE_CLONE|unix.OPEN_TREE_CLOEXEC)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(fd)
	if err := unix.MountSetattr(fd, "", unix.AT_EMPTY_PATH, &unix.MountAttr{Attr_set: unix.MOUNT_ATTR_IDMAP, Userns_fd: uint64(f.Fd())}); err != nil {
		t.Fatal(err)
	}
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		t.Fatal(err)
	}
	if st.Uid != r.Base || st.Gid != r.Base {
		t.Errorf("idmapped owner %d:%d, want %d:%d", st.Uid, st.Gid, r.Base, r.Base)
	}
}

// BenchmarkNS is what a --private-users pod pays once for its idmapping.
func BenchmarkNS(b *testing.B) {
	if os.Geteuid() != 0 {
		b.Skip("needs root")
	}
	r := Range{Base: 0x10000000, Size: BlockSize}
	for b.Loop() {
		f, err := r.NS()
		if err != nil {
			b.Fatal(err)
		}
		f.Close()
	}
}

// BenchmarkAllocateRelease is the registry's share, 64 blocks in use.
func BenchmarkAllocateRelease(b *testing.B) {
	g := &Registry{Dir: b.TempDir(), First: 0x10000000, Blocks: 4096}
	for i := range 64 {
		g.Allocate(strconv.Itoa(i), nil)
	}
	for b.Loop() {
		r, err := g.Allocate("x", nil)
		if err == nil {
			err = g.Release("x", r)
		}
		if err != nil {
			b.Fatal(err)
		}
	}
}
