// Package prepare turns images in the store and the user's choices into a
// prepared pod directory, as docs/stage1-abi.md describes it: the pod
// manifest, the stage1 tree and one rootfs per app, each an overlay on the
// store's rendered trees (or a copy where overlayfs cannot be used).
package prepare

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"

	"github.com/appc/spec/schema"
	"github.com/appc/spec/schema/types"
	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/skiffpod/skiff/pkg/mount"
	"github.com/skiffpod/skiff/pkg/perm"
	"github.com/skiffpod/skiff/pkg/pod"
	"github.com/skiffpod/skiff/pkg/strictjson"
)

// Images is what prepare needs from the image store.
type Images interface {
	// Manifest returns the image manifest of image id.
	Manifest(id string) (*schema.ImageManifest, error)
	// Trees renders exactly images ids, in order, and returns their rootfs
	// directories.
	Trees(ctx context.Context, ids []string) ([]string, error)
}

// copier is an Images whose trees need another form to be copied rather
// than stacked (OCI layers carry overlayfs whiteouts): CopyDirs is then
// used instead of Trees.
type copier interface {
	CopyDirs(ctx context.Context, ids []string) ([]string, error)
}

// App is one app of the pod as the user asked for it.
type App struct {
	Image string // image ID in the store
	// Layers are the IDs of Image and its dependencies, top first (Image
	// itself first), as the caller resolved and checked them against the
	// run policy: exactly these are mounted, never a fresh resolution.
	Layers   []string
	Name     string   // app name; derived from the image name when empty
	Exec     []string // replaces the image's exec when set
	Args     []string // appended to the exec
	User     string
	Group    string
	WorkDir  string
	Env      []string // KEY=VALUE, highest precedence
	EnvFiles []string // files of KEY=VALUE lines, below Env
	Mounts   []schema.Mount
	ReadOnly bool
	// SupplementaryGIDs are added to the image's (appc's supplementaryGIDs).
	SupplementaryGIDs []int
	Memory            string // appc resource quantity, e.g. 128M
	CPU               string // e.g. 500m
	CapsRetain        []string
	CapsRemove        []string
	// Seccomp is "mode=retain|remove,errno=EPERM,syscall,..." (rkt's form).
	Seccomp    string
	NoNewPrivs bool
	// CPUShares and OOMScoreAdj are the os/linux/cpu-shares and
	// os/linux/oom-score-adj isolators (rkt's --cpu-shares and
	// --oom-score-adj), when set.
	CPUShares   *types.LinuxCPUShares
	OOMScoreAdj *types.LinuxOOMScoreAdj
	// PIDNamespace gives the app a PID namespace of its own
	// (pod.AnnotationPIDNamespace), for a stage1 with that feature.
	PIDNamespace bool
	// Runtime is the app as a user's pod manifest gave it (--pod-manifest):
	// it is taken as it is, with the image's app section where it has
	// none; the fields above but Image and Layers are then unused.
	Runtime *schema.RuntimeApp
	// Stdin gives the app a stdin that skiff attach reaches
	// (pod.AnnotationStdin); StdinOnce closes it when the first attach
	// ends it (pod.AnnotationStdinOnce).
	Stdin, StdinOnce bool
	// The CRI's security context (pod.FeatureAppSecurity), each the
	// annotation of that name on the app: SeccompProfile replaces Seccomp
	// and the default profile (pod.AnnotationSeccomp: "unconfined" or an
	// OCI linux.seccomp document), Privileged, and paths masked or made
	// read-only in addition to skiff's.
	SeccompProfile string
	Privileged     bool
	MaskedPaths    []string
	ReadonlyPaths  []string
	// SharedMounts are the app's paths whose mounts stay shared with
	// their peers (pod.AnnotationSharedMounts, pod.FeatureSharedMounts).
	SharedMounts []string
	// HostDevices are the host's device nodes the app gets
	// (pod.AnnotationHostDevices, pod.FeatureHostDevices).
	HostDevices []specs.LinuxDevice
}

// Options describe the whole pod.
type Options struct {
	DataDir string
	Stage1  string // image ID of the stage1
	// Stage1Layers are the stage1's layers, as App.Layers.
	Stage1Layers []string
	Apps         []App
	Volumes      []types.Volume
	InheritEnv   []string // the host environment, lowest precedence, when --inherit-env
	NoOverlay    bool
	// PrivateUsers gives the pod a user namespace of its own: a uid range
	// from Ranges, its image trees idmapped into it (docs/user-namespaces.md).
	PrivateUsers bool
	// PidsLimit is the most tasks the whole pod may hold: 0 means
	// podunit.DefaultPidsLimit, a negative count no limit.
	PidsLimit int64
	// Hostname, when set, is recorded in the pod manifest
	// (AnnotationHostname): the hostname `prepare --hostname` gave for
	// run-prepared, which may override it.
	Hostname string
	// Sandbox makes the pod an app sandbox (AnnotationSandbox): it may
	// have no apps.
	Sandbox bool
	// Privileged marks a sandbox privileged (pod.AnnotationPrivileged on
	// the pod manifest): its privileged apps may have the host's devices.
	Privileged bool
	// Ports and Annotations are a user's pod manifest's (--pod-manifest).
	Ports       []types.ExposedPort
	Annotations types.Annotations
	// Insecure are the run-time protections --insecure-options turns off
	// (capabilities, paths, seccomp), recorded for the stage1
	// (pod.AnnotationInsecureOptions).
	Insecure []string
	// Platform is the os/arch[/variant] every app's image must be for
	// (--platform); "" means this host's.
	Platform string
	Log      *slog.Logger
}

// AnnotationHostname is the pod manifest annotation that holds the pod's
// hostname when prepare was given one.
const AnnotationHostname = "skiff.dev/hostname"

// mountRecord is one overlay of a prepared pod, kept so that run-prepared
// can mount again what a reboot took away.
type mountRecord struct {
	Target string   `json:"target"` // relative to the pod dir
	Lowers []string `json:"lowers"` // absolute store paths
	Upper  string   `json:"upper"`  // relative to the pod dir
	Work   string   `json:"work"`
}

const mountsFile = "mounts.json"

// maxMountsFileSize bounds the mounts record, read back from the pod dir.
const maxMountsFileSize = 16 << 20

// Stage1ImageFile holds the stage1 image ID, so entrypoints can be run from
// the store's read-only tree rather than from anything the pod could write.
const Stage1ImageFile = "stage1-image"

// Prepare creates a pod and fills it. It mounts nothing: Mount mounts the
// pod's trees when it is about to run, so that a prepared pod costs no
// mount and its removal no unmount (an overlay's unmount syncs the
// filesystem of its upper dir). The pod is returned locked and in the
// Preparing state; the caller moves it to Prepared or Running. On error the
// pod is moved to garbage and unlocked.
func Prepare(ctx context.Context, imgs Images, o Options) (p *pod.Pod, err error) {
	if len(o.Apps) == 0 && !o.Sandbox {
		return nil, errors.New("prepare pod: no apps")
	}
	if !o.NoOverlay {
		if err := mount.OverlaySupported(o.DataDir); err != nil {
			o.Log.Warn("overlayfs unusable here, copying image trees instead", "err", err)
			o.NoOverlay = true
		}
	}
	if o.PrivateUsers && o.NoOverlay {
		return nil, fmt.Errorf("%w: it needs overlays (image trees are idmapped, never copied or chowned)", ErrPrivateUsers)
	}
	// The manifest first: a pod that cannot be described is never created.
	pm, err := Manifest(imgs, o)
	if err != nil {
		return nil, err
	}
	s1m, err := imgs.Manifest(o.Stage1)
	if err != nil {
		return nil, fmt.Errorf("prepare stage1: %w", err)
	}
	s1, err := pod.ParseStage1(s1m)
	if err != nil {
		return nil, err
	}
	if o.PrivateUsers && !s1.Supports(pod.FeaturePrivateUsers) {
		return nil, fmt.Errorf("%w: stage1 %s does not support it", ErrPrivateUsers, s1.Name)
	}
	p, err = pod.Create(o.DataDir)
	if err != nil {
		return nil, err
	}
	defer func() {
		if err != nil {
			if err := ReleasePrivateUsers(p); err != nil {
				o.Log.Warn("release uid range", "pod", p.UUID, "err", err)
			}
			p.Transition(pod.Garbage)
			p.Unlock()
			p = nil
		}
	}()
	if err := p.Transition(pod.Preparing); err != nil {
		return p, err
	}
	// The pod's roots and overlay dirs hold image content: root only.
	for _, d := range []string{pod.Stage1Dir, pod.OverlayDir} {
		if err := perm.MkdirPrivate(p.File(d)); err != nil {
			return p, fmt.Errorf("prepare pod: %w", err)
		}
	}
	if o.PrivateUsers {
		if _, err := allocateUsers(p); err != nil {
			return p, err
		}
	}
	var records []mountRecord
	s1Lowers, err := trees(ctx, imgs, o.Stage1, o.Stage1Layers, false)
	if err != nil {
		return p, fmt.Errorf("prepare stage1: %w", err)
	}
	records = append(records, mountRecord{Target: pod.Stage1Rootfs, Lowers: s1Lowers, Upper: "overlay/stage1/upper", Work: "overlay/stage1/work"})
	for i, ra := range pm.Apps {
		lowers, err := trees(ctx, imgs, o.Apps[i].Image, o.Apps[i].Layers, o.NoOverlay)
		if err != nil {
			return p, fmt.Errorf("prepare app %s: %w", ra.Name, err)
		}
		name := ra.Name.String()
		records = append(records, mountRecord{Target: pod.AppRootfs(name), Lowers: lowers,
			Upper: "overlay/app-" + name + "/upper", Work: "overlay/app-" + name + "/work"})
	}
	if err := writeJSON(p.File(mountsFile), records, true); err != nil {
		return p, err
	}
	if err := writeJSON(p.File(pod.Stage1Manifest), s1m, false); err != nil {
		return p, err
	}
	if err := perm.WriteFile(p.File(Stage1ImageFile), []byte(o.Stage1), true); err != nil {
		return p, fmt.Errorf("prepare pod: %w", err)
	}
	if o.NoOverlay {
		if err := copyTrees(p, records); err != nil {
			return p, err
		}
	}
	// The apps' image manifests belong in the stage1's tree: its copy, or
	// the upper dir of its overlay, not mounted yet.
	s1tree := records[0].Upper
	if o.NoOverlay {
		s1tree = pod.Stage1Rootfs
	}
	for i, ra := range pm.Apps {
		im, _ := imgs.Manifest(o.Apps[i].Image)
		if err := writeJSON(p.File(s1tree+strings.TrimPrefix(pod.AppManifest(ra.Name.String()), pod.Stage1Rootfs)), im, false); err != nil {
			return p, err
		}
	}
	// A new pod: no apps record to forget (pod.ForgetApps) yet.
	if err := writeJSON(p.File(pod.ManifestFile), pm, true); err != nil {
		return p, err
	}
	return p, p.RecordApps()
}

// trees renders the layers of image id, which must begin with id itself.
func trees(ctx context.Context, imgs Images, id string, layers []string, noOverlay bool) ([]string, error) {
	if len(layers) == 0 || layers[0] != id {
		return nil, fmt.Errorf("image %s: %w", id, ErrLayers)
	}
	if c, ok := imgs.(copier); ok && noOverlay {
		return c.CopyDirs(ctx, layers)
	}
	return imgs.Trees(ctx, layers)
}

// Mount mounts the pod's overlays that are not mounted yet: before a pod
// runs (Prepare mounts nothing), after a reboot, for an export. Pods prepared with a copy get their copies bound
// on themselves, nosuid and nodev, as overlays are.
func Mount(p *pod.Pod) error {
	records, err := readMounts(p)
	if err != nil {
		return fmt.Errorf("mount pod %s: %w", p.UUID, err)
	}
	_, err = os.Stat(p.File("copied"))
	copied := err == nil
	mounted, err := mount.Under(p.Path())
	if err != nil {
		return err
	}
	have := map[string]bool{}
	for _, m := range mounted {
		have[m] = true
	}
	users, private, err := PrivateUsers(p)
	if err != nil {
		return err
	}
	var ns *os.File
	if private {
		if copied {
			return fmt.Errorf("mount pod %s: %w: its image trees are copies", p.UUID, ErrPrivateUsers)
		}
		// The registry is on a tmpfs: after a reboot the pod claims its
		// range again (and fails if another pod took it meanwhile).
		o, err := owner(p)
		if err == nil {
			err = Ranges.Claim(o, users)
		}
		if err != nil {
			return fmt.Errorf("mount pod %s: %w", p.UUID, err)
		}
	}
	for _, r := range records {
		target := p.File(r.Target)
		if have[target] {
			continue
		}
		// The targets are in the stage1's tree, which a KVM guest writes
		// while an app sandbox runs: made and named without following a
		// symlink it could have planted there.
		dir, err := mount.MkdirAllBeneath(p.Path(), r.Target)
		if err != nil {
			return fmt.Errorf("mount pod %s: %w", p.UUID, err)
		}
		defer dir.Close()
		if !copied {
			target = mount.FDPath(dir)
		}
		switch {
		case copied:
			err = mount.BindSecure(target)
		case private:
			if ns == nil {
				if ns, err = users.NS(); err != nil {
					return fmt.Errorf("mount pod %s: %w", p.UUID, err)
				}
				defer ns.Close()
			}
			err = mount.OverlayIDMapped(r.Lowers, p.File(r.Upper), p.File(r.Work), target, ns, int(users.Base))
		default:
			err = mount.Overlay(r.Lowers, p.File(r.Upper), p.File(r.Work), target)
		}
		if err != nil {
			return fmt.Errorf("mount %s: %w", r.Target, err)
		}
	}
	return nil
}

// readMounts reads the overlay records Prepare wrote.
func readMounts(p *pod.Pod) ([]mountRecord, error) {
	b, err := p.ReadFile(mountsFile, maxMountsFileSize)
	if err != nil {
		return nil, err
	}
	var records []mountRecord
	if err := strictjson.Unmarshal(b, &records); err != nil {
		return nil, err
	}
	return records, nil
}

// Stage1Image returns the image ID of the pod's stage1, as Prepare
// recorded it.
func Stage1Image(p *pod.Pod) (string, error) {
	b, err := p.ReadFile(Stage1ImageFile, pod.MaxStateFileSize)
	if err != nil {
		return "", fmt.Errorf("pod %s: stage1 image: %w", p.UUID, err)
	}
	return strings.TrimSpace(string(b)), nil
}

// ImageIDs returns the images pod p uses, as Prepare recorded them: its
// stage1 and its apps' layers (an OCI image's layers by their diff_id
// hexes). A pod not prepared yet has none: a prepare holds the store until
// it has written them, so an image gc cannot be asking in between.
func ImageIDs(p *pod.Pod) []string {
	var ids []string
	if id, err := Stage1Image(p); err == nil {
		ids = append(ids, id)
	}
	records, err := readMounts(p)
	if err != nil {
		return ids
	}
	for _, r := range records {
		for _, l := range r.Lowers {
			ids = append(ids, filepath.Base(filepath.Dir(l)))
		}
	}
	return ids
}

// copyTrees fills the pod with copies of the lower dirs, bottom layer first.
func copyTrees(p *pod.Pod, records []mountRecord) error {
	for _, r := range records {
		target := p.File(r.Target)
		if err := os.MkdirAll(target, 0o755); err != nil {
			return fmt.Errorf("copy image tree: %w", err)
		}
		for i := len(r.Lowers) - 1; i >= 0; i-- {
			// The store's trees were unpacked by us under os.Root rules; cp -a
			// keeps owners, modes, links and special bits exactly.
			out, err := exec.Command("cp", "-a", "--reflink=auto", r.Lowers[i]+"/.", target+"/").CombinedOutput()
			if err != nil {
				return fmt.Errorf("copy image tree to %s: %w: %s", r.Target, err, strings.TrimSpace(string(out)))
			}
		}
	}
	return perm.WriteFile(p.File("copied"), nil, true)
}

var nonName = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`[^a-z0-9-]+`) })

// AppName derives an app name from an image name: its last path element,
// lowercased, with anything not allowed in an appc ACName replaced.
func AppName(image string) string {
	base := image[strings.LastIndex(image, "/")+1:]
	n := strings.Trim(nonName().ReplaceAllString(strings.ToLower(base), "-"), "-")
	if n == "" {
		n = "app"
	}
	return n
}

// writeJSON writes v to path; shared files are readable by the skiff
// group (pod metadata), the others are inside the pod's private dirs.
func writeJSON(path string, v any, shared bool) error {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return fmt.Errorf("write %s: %w", filepath.Base(path), err)
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return fmt.Errorf("write %s: %w", filepath.Base(path), err)
	}
	if err := os.WriteFile(path, b, 0o644); err != nil {
		return fmt.Errorf("write %s: %w", filepath.Base(path), err)
	}
	if shared {
		if err := perm.Shared(path); err != nil {
			return fmt.Errorf("write %s: %w", filepath.Base(path), err)
		}
	}
	return nil
}
