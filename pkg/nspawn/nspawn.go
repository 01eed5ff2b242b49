// Package nspawn is the namespace stage1 (stage1-ns): it runs a pod as a
// systemd-nspawn container booting systemd, one systemd unit per app, and
// implements the run, enter, stop and gc entrypoints of docs/stage1-abi.md.
// The units, the hooks they call inside the container and the layout of
// the stage1 rootfs are shared with stage1-kvm: see package podunit.
package nspawn

import "github.com/skiffpod/skiff/pkg/podunit"

// In-container paths, see package podunit.
const (
	stage2Path = podunit.Stage2Path
	statusDir  = podunit.StatusDir
	failedFile = podunit.FailedFile
	readyFile  = podunit.ReadyFile
	cgroupDir  = podunit.CgroupDir
	volumesDir = podunit.VolumesDir
	unitDir    = podunit.UnitDir

	sigPoweroff = podunit.SigPoweroff
)

// unitName is the systemd unit that runs app.
func unitName(app string) string { return podunit.UnitName(app) }

// App is what the units of one app are made from.
type App = podunit.App

// AppsOf extracts what the units need from a pod manifest.
var AppsOf = podunit.AppsOf

// Units returns the unit files that start the pod's apps (podunit.Units).
var Units = podunit.Units

// Hook runs one of the hooks the pod's units call (podunit.Hook).
var Hook = podunit.Hook
