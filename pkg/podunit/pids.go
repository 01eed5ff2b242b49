package podunit

import (
	"fmt"
	"strconv"

	"github.com/appc/spec/schema"
)

// AnnotationPidsLimit is the pod manifest annotation (written by stage0's
// --pids-limit) that bounds the number of tasks, processes and threads,
// of the whole pod. "0" means no limit.
const AnnotationPidsLimit = "skiff.dev/pids-limit"

// DefaultPidsLimit applies to a pod whose manifest names no limit (one
// prepared before the limit existed, or by another tool): podman's default
// per container is 2048, a pod here holds several apps and its systemd.
const DefaultPidsLimit = 4096

// PidsLimit returns the pod's task limit, 0 for none.
func PidsLimit(pm *schema.PodManifest) (int64, error) {
	v, ok := pm.Annotations.Get(AnnotationPidsLimit)
	if !ok {
		return DefaultPidsLimit, nil
	}
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil || n < 0 {
		return 0, fmt.Errorf("pod manifest: %w: annotation %s=%q is not a count", ErrUsage, AnnotationPidsLimit, v)
	}
	return n, nil
}

// pidsUnits bounds the pod's apps from inside, where the pod's systemd
// owns the pids controller (the KVM guest, a cgroup v2 host): every app
// unit runs in system.slice. On a cgroup v1 host stage1-ns sets the limit
// on the pod's cgroup from outside, which also counts the pod's systemd.
func pidsUnits(limit int64) map[string]string {
	max := "infinity"
	if limit > 0 {
		max = strconv.FormatInt(limit, 10)
	}
	return map[string]string{"system.slice.d/skiff-pids.conf": "[Slice]\nTasksMax=" + max + "\n"}
}
