package stage1kit

import "testing"

func TestCgroupIsService(t *testing.T) {
	for _, tc := range []struct {
		name, cgroup string
		want         bool
	}{
		{"hybrid, systemd-run unit", "12:cpu,cpuacct:/machine.slice/web.service\n1:name=systemd:/machine.slice/web.service\n0::/machine.slice/web.service\n", true},
		{"unified only", "0::/system.slice/web.service\n", true},
		{"login session scope", "1:name=systemd:/user.slice/user-0.slice/session-1.scope\n0::/user.slice/user-0.slice/session-1.scope\n", false},
		{"a controller's .service path does not count", "12:cpu,cpuacct:/system.slice/x.service\n1:name=systemd:/init.scope\n0::/init.scope\n", false},
		{"no systemd", "0::/\n", false},
	} {
		if got := cgroupIsService(tc.cgroup); got != tc.want {
			t.Errorf("%s: cgroupIsService = %v, want %v", tc.name, got, tc.want)
		}
	}
}
