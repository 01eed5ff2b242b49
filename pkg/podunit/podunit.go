// Package podunit is what every stage1 that boots systemd as the pod's init
// shares inside the pod (stage1-ns in a container, stage1-kvm in a VM): the
// layout of the stage1 rootfs, one systemd unit per app, the hook those
// units call when an app starts and ends, and the steps of run that prepare
// the stage1 rootfs before boot and read the apps' fate after it. The
// stage1 images are assembled at build time by package stage1image.
//
// Paths inside the stage1 rootfs (as the pod's systemd sees them):
//
//	/skiff/run, enter, stop, gc, hook   the stage1 binary (one multi-call program)
//	/skiff/stage2                       the per-app launcher
//	/skiff/status/<app>                 exit status written by the hook
//	/skiff/failed                       name of the first app that failed
//	/skiff/ready                        created once every app's process runs
//	/skiff/stopping                     created when the pod is asked to stop
//	/skiff/attach/<app>                 the socket of an attachable app's relay (stage2)
//	/skiff/cgroup/<app>/<controller>    the app's host cgroup (stage1-ns on cgroup v1 hosts)
//	/skiff/volumes/<name>               the pod's volumes
//	/opt/stage2/<app>/spec.json         the app's OCI runtime spec
package podunit

import "github.com/skiffpod/skiff/pkg/pod"

// Paths inside the stage1 rootfs shared by the units, the hooks and run;
// those stage0 reads too (the status dir, the ready marker, the apps dir)
// are pkg/pod's InPod constants.
const (
	SkiffDir   = "/skiff"
	HookPath   = "/skiff/hook"
	Stage2Path = "/skiff/stage2"
	FailedFile = "/skiff/failed"
	// StoppingFile marks a pod asked to stop from outside (see Stopping).
	StoppingFile = "/skiff/stopping"
	// StdinFIFO is the app's stdin in an interactive pod whose stdin is
	// not a terminal (see PipedStdin).
	StdinFIFO  = "/skiff/stdin"
	CgroupDir  = "/skiff/cgroup"
	AttachDir  = "/skiff/attach"
	VolumesDir = "/skiff/volumes"
	UnitDir    = "/etc/systemd/system"
	// ImageUnitDir holds the stage1 image's own units (journald, the
	// poweroff, a stage1's extras and their drop-ins).
	ImageUnitDir = "/usr/lib/systemd/system"
	JournalDir   = "/var/log/journal"

	// journald only writes to /var/log/journal once this flag exists.
	JournalFlushed = "/run/systemd/journal/flushed"
)

// Bundle is the in-pod bundle directory of app.
func Bundle(app string) string { return pod.InPodAppDir(app) }

// AttachSocket is where the relay of app, created with a stdin to
// attach to, listens (pkg/attach).
func AttachSocket(app string) string { return AttachDir + "/" + app }

// UnitName is the systemd unit that runs app.
func UnitName(app string) string { return "skiff-app-" + app + ".service" }
