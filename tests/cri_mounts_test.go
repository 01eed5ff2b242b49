//go:build e2e

package tests

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// hostMounted says whether path is a mount point in the test's (the
// host's) mount namespace.
func hostMounted(t *testing.T, path string) bool {
	t.Helper()
	return strings.Contains(readFile(t, "/proc/self/mounts"), " "+path+" ")
}

// hostMount mounts a tmpfs on dir (made first) on the host, undone when
// the test ends.
func hostMount(t *testing.T, dir string, flags uintptr) {
	t.Helper()
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := unix.Mount("tmpfs", dir, "tmpfs", 0, ""); err != nil {
		t.Fatalf("mount tmpfs on %s: %v", dir, err)
	}
	t.Cleanup(func() { unix.Unmount(dir, unix.MNT_DETACH) })
	if flags != 0 {
		if err := unix.Mount("", dir, "", flags, ""); err != nil {
			t.Fatalf("propagation of %s: %v", dir, err)
		}
	}
}

// TestCRIMountPropagation checks a container's host-path mounts as the
// CRI's three propagations make them, on stage1-ns: a host directory
// that is a shared mount, a mount made on the host below it after the
// container started, and a mount the (privileged) container makes below
// its copy. None (rprivate) sees neither on the other side;
// HostToContainer (rslave) sees the host's, and the host not the
// container's; Bidirectional (rshared) both. Refused with InvalidArgument,
// leaving nothing: Bidirectional in a container that is not privileged,
// Bidirectional on a host path that is not on a shared mount, and
// HostToContainer on one that is on a private mount.
func TestCRIMountPropagation(t *testing.T) {
	img := busyboxOCI(t)
	e := newEnv(t)
	base := t.TempDir()
	srv := startCRI(t, e, filepath.Join(base, "cri.sock"))
	srv.must("pull", img)
	privPod := podConfig("prop", filepath.Join(base, "logs"), 0)
	privPod["linux"] = map[string]any{"security_context": map[string]any{"privileged": true}}
	podJSON := writeJSONFile(t, base, "pod.json", privPod)
	sb := srv.must("runp", podJSON)

	n := 0
	create := func(src string, propagation int, privileged bool) (string, string, bool) {
		n++
		c := map[string]any{"metadata": map[string]any{"name": fmt.Sprintf("c%d", n)}, "image": map[string]any{"image": img},
			"command": []string{"sleep", "1000"}, "log_path": fmt.Sprintf("c%d.log", n),
			"mounts": []map[string]any{{"host_path": src, "container_path": "/vol", "propagation": propagation}},
			"linux":  map[string]any{"security_context": map[string]any{"privileged": privileged}}}
		return srv.crictl("create", sb, writeJSONFile(t, base, fmt.Sprintf("c%d.json", n), c), podJSON)
	}
	const private, hostToContainer, bidirectional = 0, 1, 2
	for _, tc := range []struct {
		name                string
		propagation         int
		hostFlags           uintptr // the host path's propagation
		toContainer, toHost bool
	}{
		{"rprivate", private, unix.MS_SHARED, false, false},
		{"rslave", hostToContainer, unix.MS_SHARED, true, false},
		{"rslave from a slave", hostToContainer, unix.MS_SLAVE, true, false},
		{"rshared", bidirectional, unix.MS_SHARED, true, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			src := filepath.Join(base, strings.ReplaceAll(tc.name, " ", "-"))
			hostMount(t, src, unix.MS_SHARED)
			master := src // where the host mounts
			if tc.hostFlags == unix.MS_SLAVE {
				// A slave of the shared mount above: a bind of it, made
				// slave; the host mounts on its master.
				slave := src + "-slave"
				os.MkdirAll(slave, 0o755)
				if err := unix.Mount(src, slave, "", unix.MS_BIND, ""); err != nil {
					t.Fatal(err)
				}
				t.Cleanup(func() { unix.Unmount(slave, unix.MNT_DETACH) })
				if err := unix.Mount("", slave, "", unix.MS_SLAVE, ""); err != nil {
					t.Fatal(err)
				}
				src = slave
			}
			id, errs, ok := create(src, tc.propagation, true)
			if !ok {
				t.Fatalf("create: %s\nserver log:\n%s", errs, srv.out)
			}
			srv.must("start", id)
			// The host mounts below the host path after the start.
			hostMount(t, filepath.Join(master, "from-host"), 0)
			os.WriteFile(filepath.Join(master, "from-host", "flag"), nil, 0o644)
			out, _, _ := srv.crictl("exec", "-s", id, "ls", "/vol/from-host")
			if got := strings.Contains(out, "flag"); got != tc.toContainer {
				t.Errorf("the host's mount in the container: %t, want %t (ls: %q)", got, tc.toContainer, out)
			}
			// The container mounts below its copy.
			srv.must("exec", "-s", id, "sh", "-c", "mkdir -p /vol/from-ctr && mount -t tmpfs ctr /vol/from-ctr && touch /vol/from-ctr/flag")
			got := false
			for _, d := range []string{src, master} {
				if p := filepath.Join(d, "from-ctr"); hostMounted(t, p) {
					got = true
					unix.Unmount(p, unix.MNT_DETACH)
				}
			}
			if got != tc.toHost {
				t.Errorf("the container's mount on the host: %t, want %t", got, tc.toHost)
			}
			srv.must("stop", id)
			srv.must("rm", id)
			// Removing the container unmounts its copy, not the host's mounts.
			if p := filepath.Join(master, "from-host"); !hostMounted(t, p) {
				t.Errorf("%s is no longer mounted on the host after the container's rm", p)
			}
		})
	}

	t.Run("refused", func(t *testing.T) {
		before := srv.must("ps", "-a", "-q")
		priv := filepath.Join(base, "private")
		hostMount(t, priv, unix.MS_PRIVATE)
		shared := filepath.Join(base, "shared")
		hostMount(t, shared, unix.MS_SHARED)
		for _, tc := range []struct {
			name        string
			src         string
			propagation int
			privileged  bool
		}{
			{"bidirectional, not privileged", shared, bidirectional, false},
			{"bidirectional on a private mount", priv, bidirectional, true},
			{"host-to-container on a private mount", priv, hostToContainer, true},
		} {
			if _, errs, ok := create(tc.src, tc.propagation, tc.privileged); ok || !strings.Contains(errs, "code = InvalidArgument") {
				t.Errorf("%s: ok=%t %s, want InvalidArgument", tc.name, ok, errs)
			}
		}
		if after := srv.must("ps", "-a", "-q"); after != before {
			t.Errorf("refused containers left behind:\n%s\nwas:\n%s", after, before)
		}
	})
	srv.must("stopp", sb)
	srv.must("rmp", sb)
}
