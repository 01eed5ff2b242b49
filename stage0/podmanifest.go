package main

import (
	"fmt"
	"slices"
	"strings"

	"github.com/appc/spec/schema"
	"github.com/spf13/pflag"

	"github.com/skiffpod/skiff/pkg/pod"
	"github.com/skiffpod/skiff/pkg/prepare"
	"github.com/skiffpod/skiff/pkg/safefile"
)

// registerPodManifest registers rkt's --pod-manifest (run and prepare).
func (f *podFlags) registerPodManifest(fs *pflag.FlagSet) {
	fs.StringVar(&f.podManifest, "pod-manifest", "", "take the pod's apps, volumes, ports and annotations from this appc pod manifest (no images or app flags then)")
}

// podManifestConflicts are the flags a pod manifest decides instead:
// rkt's list (--volume, --mount, --port, --inherit-env, --set-env,
// --set-env-file, a --pull-policy other than new), the other app flags,
// which would apply to every app, and --signature, which names images.
func podManifestConflicts(fs *pflag.FlagSet) []string {
	var got []string
	fs.Visit(func(fl *pflag.Flag) {
		if fl.Name == "pull-policy" && fl.Value.String() == "new" {
			return
		}
		if slices.Contains([]string{"volume", "port", "inherit-env", "pull-policy", "signature"}, fl.Name) {
			got = append(got, "--"+fl.Name)
		}
	})
	var a appFlags
	app := pflag.NewFlagSet("app", pflag.ContinueOnError)
	a.register(app)
	app.VisitAll(func(fl *pflag.Flag) {
		if fs.Changed(fl.Name) {
			got = append(got, "--"+fl.Name)
		}
	})
	return got
}

// checkPodManifest refuses, as rkt, images and the flags a pod manifest
// decides, given with --pod-manifest.
func (f *podFlags) checkPodManifest(fs *pflag.FlagSet) error {
	if fs.NArg() > 0 {
		return usagef("conflicting flags set with --pod-manifest: image %s (the pod manifest names the images)", fs.Arg(0))
	}
	if c := podManifestConflicts(fs); len(c) > 0 {
		return usagef("conflicting flags set with --pod-manifest: %s (the pod manifest decides them)", strings.Join(c, ", "))
	}
	return nil
}

// podManifestApps reads a user's pod manifest: its apps become the pod's,
// each with its image as the reference to resolve (the ID when given, as
// rkt, else the name and version label, fetched as any image), and its
// volumes, ports and annotations go into o.
func podManifestApps(file string, o *prepare.Options) ([]appArg, error) {
	b, err := safefile.ReadFile(file, pod.MaxManifestSize)
	if err != nil {
		return nil, fmt.Errorf("--pod-manifest: %w", err)
	}
	var pm schema.PodManifest
	if err := pm.UnmarshalJSON(b); err != nil {
		return nil, fmt.Errorf("--pod-manifest %s: %w", file, err)
	}
	if len(pm.Apps) == 0 {
		return nil, fmt.Errorf("--pod-manifest %s: pod must contain at least one application", file)
	}
	o.Volumes, o.Ports, o.Annotations = pm.Volumes, pm.Ports, pm.Annotations
	var apps []appArg
	for i := range pm.Apps {
		ra := &pm.Apps[i]
		ref := ""
		switch {
		case !ra.Image.ID.Empty():
			ref = ra.Image.ID.String()
		case ra.Image.Name != nil && !ra.Image.Name.Empty():
			ref = ra.Image.Name.String()
			if v, ok := ra.Image.Labels.Get("version"); ok {
				ref += ":" + v
			}
		default:
			return nil, fmt.Errorf("--pod-manifest %s: app %s: no image ID or name", file, ra.Name)
		}
		apps = append(apps, appArg{image: ref, runtime: ra, set: map[string]bool{}})
	}
	return apps, nil
}
