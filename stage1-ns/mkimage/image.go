package main

import (
	"io"

	"github.com/skiffpod/skiff/pkg/pod"
	"github.com/skiffpod/skiff/pkg/stage1image"
	"github.com/skiffpod/skiff/stage1-ns/nspawn"
)

// ImageName is the name of the stage1-ns image.
const ImageName = "skiff.dev/stage1-ns"

// ImageOptions say where the pieces of the stage1-ns image come from.
type ImageOptions struct {
	Stage1   string // the static multi-call stage1-ns binary
	Stage2   string // the static stage2 binary
	Version  string // the image's version label
	HostRoot string // the tree systemd is taken from, "/" on a build host
}

// BuildImage writes the stage1-ns image, a gzip-compressed ACI, to w: the
// binaries and the build host's minimal systemd (stage1image.BuildImage).
func BuildImage(w io.Writer, o ImageOptions) error {
	return stage1image.BuildImage(w, stage1image.ImageOptions{
		Name: ImageName, Stage1: o.Stage1, Stage2: o.Stage2, Version: o.Version, HostRoot: o.HostRoot,
		Features: []string{pod.FeatureMetadata, pod.FeatureDebug, pod.FeaturePrivateUsers, pod.FeatureAppPIDNamespace, pod.FeatureIPCParent, pod.FeatureTTY, pod.FeatureAttach, pod.FeatureAppSecurity, pod.FeatureSharedMounts, pod.FeatureHostDevices, pod.FeatureNetWait}, Apps: true,
		Init: nspawn.PodSystemd,
	})
}
