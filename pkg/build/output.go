package build

import (
	"archive/tar"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
	"time"

	"github.com/appc/spec/schema"
	"github.com/appc/spec/schema/types"
	"github.com/opencontainers/go-digest"
	specs "github.com/opencontainers/image-spec/specs-go"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/skiffpod/skiff/pkg/imageref"
	"github.com/skiffpod/skiff/pkg/oci"
	"github.com/skiffpod/skiff/pkg/safefile"
)

// Output is where an image goes: oci:DIR[:TAG], oci-archive:FILE[:TAG],
// docker-archive:FILE, aci:FILE or docker://REF.
type Output struct {
	ACI string       // aci:FILE
	Ref imageref.Ref // the others
}

// ParseOutput parses an -o argument.
func ParseOutput(s string) (Output, error) {
	if f, ok := strings.CutPrefix(s, "aci:"); ok {
		if f == "" {
			return Output{}, fmt.Errorf("%w: aci: needs a file name", ErrOutput)
		}
		return Output{ACI: f}, nil
	}
	r, err := imageref.Parse(s)
	if err != nil {
		return Output{}, fmt.Errorf("%w: %q is not oci:DIR[:TAG], oci-archive:FILE, docker-archive:FILE, aci:FILE or docker://REF: %v", ErrOutput, s, err)
	}
	if r.Transport == imageref.Docker && (r.Digest != "" || r.Tag == "") {
		return Output{}, fmt.Errorf("%w: %s: push to a tag, not a digest", ErrOutput, s)
	}
	return Output{Ref: r}, nil
}

// Check refuses an output that exists, before the build does any work.
func (o Output) Check() error {
	p := o.ACI
	switch o.Ref.Transport {
	case imageref.OCI, imageref.OCIArchive, imageref.DockerArchive:
		p = o.Ref.Path
	case imageref.Docker:
		return nil
	}
	if _, err := os.Lstat(p); err == nil {
		return fmt.Errorf("%w: %s exists", ErrOutput, p)
	}
	return nil
}

// Write writes img to o; pushOpts are the registry options of a push.
// It returns the image's digest (an ACI's: its sha512 image ID).
func (img *Image) Write(ctx context.Context, o Output, pushOpts oci.Options, progress io.Writer) (string, error) {
	tag := o.Ref.Tag
	if tag == "" {
		tag = imageref.DefaultTag
	}
	switch {
	case o.ACI != "":
		return img.writeACI(o.ACI)
	case o.Ref.Transport == imageref.OCI:
		return img.ManifestDigest.String(), img.writeLayout(o.Ref.Path, tag)
	case o.Ref.Transport == imageref.OCIArchive:
		err := safefile.Write(o.Ref.Path, 0o644, false, func(w io.Writer) error {
			return writeFiles(w, img.layoutFiles(tag), img.epoch)
		})
		return img.ManifestDigest.String(), err
	case o.Ref.Transport == imageref.DockerArchive:
		return img.ManifestDigest.String(), safefile.Write(o.Ref.Path, 0o644, false, func(w io.Writer) error {
			return writeFiles(w, img.dockerArchiveFiles(), img.epoch)
		})
	case o.Ref.Transport == imageref.Docker:
		blobs := map[digest.Digest][]byte{digest.FromBytes(img.Config): img.Config, digest.FromBytes(img.Layer): img.Layer}
		d, err := oci.Push(ctx, o.Ref, &oci.Blobs{Manifest: img.Manifest, MediaType: ocispec.MediaTypeImageManifest,
			Open: func(d digest.Digest) (io.ReadCloser, error) {
				b, ok := blobs[d]
				if !ok {
					return nil, os.ErrNotExist
				}
				return io.NopCloser(bytes.NewReader(b)), nil
			}}, pushOpts, progress)
		return d.String(), err
	}
	return "", fmt.Errorf("%w: unknown output", ErrOutput)
}

// layoutFiles are the files of an OCI image layout holding img as tag.
func (img *Image) layoutFiles(tag string) map[string][]byte {
	idx, _ := json.Marshal(ocispec.Index{
		Versioned: specs.Versioned{SchemaVersion: 2}, MediaType: ocispec.MediaTypeImageIndex,
		Manifests: []ocispec.Descriptor{{MediaType: ocispec.MediaTypeImageManifest, Digest: img.ManifestDigest,
			Size: int64(len(img.Manifest)), Annotations: map[string]string{ocispec.AnnotationRefName: tag}}},
	})
	files := map[string][]byte{
		"oci-layout": []byte(`{"imageLayoutVersion":"1.0.0"}`),
		"index.json": idx,
	}
	for _, b := range [][]byte{img.Manifest, img.Config, img.Layer} {
		files["blobs/sha256/"+digest.FromBytes(b).Encoded()] = b
	}
	return files
}

// dockerArchiveFiles are `docker save`'s layout: manifest.json, the
// config named by its digest, the layer uncompressed.
func (img *Image) dockerArchiveFiles() map[string][]byte {
	cfg := digest.FromBytes(img.Config).Encoded() + ".json"
	layer := digest.FromBytes(img.Tar).Encoded() + "/layer.tar"
	var tags []string
	if img.spec.Name != "" {
		if r, err := imageref.Parse("docker://" + img.spec.Name); err == nil {
			tags = []string{r.Name() + ":" + r.Tag}
		}
	}
	m, _ := json.Marshal([]map[string]any{{"Config": cfg, "RepoTags": tags, "Layers": []string{layer}}})
	return map[string][]byte{"manifest.json": m, cfg: img.Config, layer: img.Tar}
}

// writeLayout writes a new OCI layout directory; on error none is left.
func (img *Image) writeLayout(dir, tag string) (err error) {
	if err := os.Mkdir(dir, 0o755); err != nil {
		return fmt.Errorf("%w: %v", ErrOutput, err)
	}
	defer func() {
		if err != nil {
			os.RemoveAll(dir)
		}
	}()
	files := img.layoutFiles(tag)
	if err := os.MkdirAll(filepath.Join(dir, "blobs", "sha256"), 0o755); err != nil {
		return err
	}
	for _, name := range sortedKeys(files) {
		if err := safefile.WriteFile(filepath.Join(dir, name), files[name], 0o644, false); err != nil {
			return err
		}
	}
	return nil
}

// writeFiles writes files as a tar: sorted, 0:0, mtime epoch, with
// their parent directories.
func writeFiles(w io.Writer, files map[string][]byte, epoch int64) error {
	t := tree{}
	for k, b := range files {
		t[k] = &node{typ: tar.TypeReg, mode: 0o644, data: b}
	}
	return writeTar(w, t, "", epoch, nil)
}

func sortedKeys(m map[string][]byte) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// writeACI writes img as an uncompressed ACI: the appc manifest says
// what the OCI config says. An ACI needs a name.
func (img *Image) writeACI(file string) (string, error) {
	s := img.spec
	name, err := types.NewACIdentifier(s.Name)
	if err != nil {
		return "", fmt.Errorf("%w: an ACI needs a name that is an appc name (--name): %v", ErrOutput, err)
	}
	app := &types.App{Exec: types.Exec(s.Exec), User: "0", Group: "0", WorkingDirectory: s.WorkDir}
	if s.User != "" {
		app.User, app.Group = s.User, s.User
	}
	if app.WorkingDirectory == "" {
		app.WorkingDirectory = "/"
	}
	for _, e := range img.env {
		k, v, _ := strings.Cut(e, "=")
		app.Environment.Set(k, v)
	}
	for _, p := range s.Ports {
		n, proto, _ := strings.Cut(p, "/")
		if proto == "" {
			proto = "tcp"
		}
		var port uint
		fmt.Sscan(n, &port)
		pn, err := types.NewACName(proto + "-" + n)
		if err != nil {
			return "", err
		}
		app.Ports = append(app.Ports, types.Port{Name: *pn, Protocol: proto, Port: port, Count: 1})
	}
	for i, v := range s.Volumes {
		mn, err := types.NewACName(fmt.Sprintf("volume-%d", i))
		if err != nil {
			return "", err
		}
		app.MountPoints = append(app.MountPoints, types.MountPoint{Name: *mn, Path: v})
	}
	m := schema.BlankImageManifest()
	m.Name = *name
	m.App = app
	m.Labels = types.Labels{{Name: "os", Value: "linux"}, {Name: "arch", Value: runtime.GOARCH}}
	mb, err := json.Marshal(m)
	if err != nil {
		return "", err
	}
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	if err := tw.WriteHeader(&tar.Header{Name: "manifest", Typeflag: tar.TypeReg, Mode: 0o644, Size: int64(len(mb)), ModTime: time.Unix(img.epoch, 0)}); err != nil {
		return "", err
	}
	tw.Write(mb)
	if err := tw.WriteHeader(&tar.Header{Name: "rootfs/", Typeflag: tar.TypeDir, Mode: 0o755, ModTime: time.Unix(img.epoch, 0)}); err != nil {
		return "", err
	}
	// The rootfs is the layer as built, under rootfs/: the inputs (the
	// build's unpacked packages among them) are gone by now.
	tr := tar.NewReader(bytes.NewReader(img.Tar))
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return "", err
		}
		h.Name = "rootfs/" + h.Name
		if h.Typeflag == tar.TypeLink {
			h.Linkname = "rootfs/" + h.Linkname
		}
		if err := tw.WriteHeader(h); err != nil {
			return "", err
		}
		if _, err := io.Copy(tw, tr); err != nil {
			return "", err
		}
	}
	if err := tw.Close(); err != nil {
		return "", err
	}
	id := digest.SHA512.FromBytes(buf.Bytes())
	return "sha512-" + id.Encoded(), safefile.WriteFile(file, buf.Bytes(), 0o644, false)
}
