// Package nspawn is the namespace stage1 (stage1-ns): it runs a pod as a
// systemd-nspawn container booting systemd, one systemd unit per app, and
// implements the run, enter, stop and gc entrypoints of docs/stage1-abi.md
// plus the small hooks the pod's units call from inside the container.
//
// Paths inside the stage1 rootfs (as the container sees them):
//
//	/skiff/run, enter, stop, gc, hook   the stage1 binary (one multi-call program)
//	/skiff/stage2                       the per-app launcher
//	/skiff/status/<app>                 exit status written by the hook
//	/skiff/failed                       name of the first app that failed
//	/skiff/ready                        created once every app has started
//	/skiff/cgroup/<app>/<controller>    the app's host cgroup (cgroup v1 hosts)
//	/skiff/volumes/<name>               the pod's volumes
//	/opt/stage2/<app>/spec.json         the app's OCI runtime spec
package nspawn

// In-container paths shared by the units, the hooks and run.
const (
	skiffDir   = "/skiff"
	hookPath   = "/skiff/hook"
	stage2Path = "/skiff/stage2"
	statusDir  = "/skiff/status"
	failedFile = "/skiff/failed"
	readyFile  = "/skiff/ready"
	cgroupDir  = "/skiff/cgroup"
	volumesDir = "/skiff/volumes"
	appsDir    = "/opt/stage2"
	unitDir    = "/etc/systemd/system"

	// journald only writes to /var/log/journal once this flag exists.
	journalFlushed = "/run/systemd/journal/flushed"
)

// bundle is the in-container bundle directory of app.
func bundle(app string) string { return appsDir + "/" + app }

// unitName is the systemd unit that runs app.
func unitName(app string) string { return "skiff-app-" + app + ".service" }
