package stage1kit

import (
	"os"
	"strings"
)

// Machined reports whether the host runs systemd as PID 1 with a system
// bus, so that a pod can be registered with systemd-machined (which the
// bus starts on first use: it need not run yet).
func Machined() bool {
	_, err1 := os.Stat("/run/systemd/system")
	_, err2 := os.Stat("/run/dbus/system_bus_socket")
	return err1 == nil && err2 == nil
}

// InService reports whether the calling process is a service's
// (systemd-run, a unit file): its cgroup, in the systemd hierarchy, is
// the service's. The pod then stays in that unit.
func InService() bool {
	b, err := os.ReadFile("/proc/self/cgroup")
	return err == nil && cgroupIsService(string(b))
}

func cgroupIsService(procCgroup string) bool {
	for _, l := range strings.Split(procCgroup, "\n") {
		// hierarchy-ID:controllers:path; the unified one has no controllers.
		f := strings.SplitN(l, ":", 3)
		if len(f) == 3 && (f[1] == "name=systemd" || f[1] == "") && strings.HasSuffix(f[2], ".service") {
			return true
		}
	}
	return false
}
