package kvm

import (
	"reflect"
	"testing"
)

func TestRegisterArgs(t *testing.T) {
	got := registerArgs("0a1b2c3d-0000-4000-8000-00000000000f", 4242, "/var/lib/skiff/pods/run/x/stage1/rootfs")
	want := []any{
		"skiff-0a1b2c3d-0000-4000-8000-00000000000f",
		[]byte{0x0a, 0x1b, 0x2c, 0x3d, 0, 0, 0x40, 0, 0x80, 0, 0, 0, 0, 0, 0, 0x0f},
		"skiff", "container", uint32(4242), "/var/lib/skiff/pods/run/x/stage1/rootfs",
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("registerArgs = %#v\nwant %#v", got, want)
	}
}

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
