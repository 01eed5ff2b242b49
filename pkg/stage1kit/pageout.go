package stage1kit

import (
	"fmt"
	"os"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// PageOutBinary asks the kernel to unmap from this process the pages of
// its own program file (code and read-only data: mappings of it that are
// not writable) that no other process maps. run waits for its pod for the
// pod's whole life, touching little of its code: the pages the boot
// faulted in, most of the binary, would otherwise stay resident in every
// idle pod's host side (docs/benchmarks.md). They stay in the page cache,
// reclaimable, and fault back in when the pod ends.
func PageOutBinary() error {
	exe, err := os.Readlink("/proc/self/exe")
	if err != nil {
		return fmt.Errorf("page out: %w", err)
	}
	b, err := os.ReadFile("/proc/self/maps")
	if err != nil {
		return fmt.Errorf("page out: %w", err)
	}
	for line := range strings.Lines(string(b)) {
		// ADDR-ADDR PERMS OFFSET DEV INODE PATH
		f := strings.Fields(line)
		if len(f) != 6 || f[5] != exe || strings.Contains(f[1], "w") {
			continue
		}
		lo, hi, _ := strings.Cut(f[0], "-")
		start, err1 := strconv.ParseUint(lo, 16, 64)
		end, err2 := strconv.ParseUint(hi, 16, 64)
		if err1 != nil || err2 != nil || end <= start {
			continue
		}
		if _, _, e := unix.Syscall(unix.SYS_MADVISE, uintptr(start), uintptr(end-start), unix.MADV_PAGEOUT); e != 0 {
			return fmt.Errorf("page out %s: %w", f[0], e)
		}
	}
	return nil
}
