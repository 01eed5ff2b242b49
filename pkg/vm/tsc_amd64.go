package vm

import (
	"slices"
	"time"
)

func rdtsc() uint64

// HostTSCkHz measures the host's TSC rate, which is also the guest's under
// TCG (qemu reads the host TSC). Three 3 ms samples, median: every TCG boot
// waits for it, and the clock's nanoseconds make 3 ms precise to 0.01 %.
func HostTSCkHz() int {
	var s []int
	for range 3 {
		t0, c0 := time.Now(), rdtsc()
		time.Sleep(3 * time.Millisecond)
		c1, dt := rdtsc(), time.Since(t0)
		s = append(s, int(float64(c1-c0)/float64(dt.Microseconds())*1000))
	}
	slices.Sort(s)
	return s[1]
}
