package cri

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/skiffpod/skiff/pkg/imageref"
	"github.com/skiffpod/skiff/pkg/podctl"
	"github.com/skiffpod/skiff/pkg/store"
)

// The CRI names images as the kubelet does: docker references without a
// transport ("busybox", "registry.k8s.io/pause:3.10", "x@sha256:..."),
// or an image ID. An image's CRI ID is its config digest ("sha256:..."),
// as containerd's; repo tags and digests are its docker references.

// parseRef parses a CRI image name as a docker reference.
func parseRef(name string) (imageref.Ref, error) {
	if name == "" || strings.Contains(name, "://") {
		return imageref.Ref{}, fmt.Errorf("image %q: %w", name, errInvalid)
	}
	r, err := imageref.Parse("docker://" + name)
	if err != nil {
		return imageref.Ref{}, fmt.Errorf("image %q: %w: %w", name, errInvalid, err)
	}
	return r, nil
}

// criID is the CRI's ID of a stored OCI image.
func criID(img store.Image) string { return img.OCI.ConfigDigest }

// findImage finds the stored OCI image the CRI names name: by CRI ID (or
// its hex, or a unique prefix of at least 12 hex digits), by store ID, or
// by reference.
func findImage(s *store.Store, name string) (store.Image, error) {
	imgs, err := s.List()
	if err != nil {
		return store.Image{}, err
	}
	hex := strings.TrimPrefix(name, "sha256:")
	var found []store.Image
	for _, img := range imgs {
		if img.OCI == nil {
			continue
		}
		id := strings.TrimPrefix(criID(img), "sha256:")
		if img.ID == name || id == hex || len(hex) >= 12 && strings.HasPrefix(id, hex) && name == hex {
			found = append(found, img)
		}
	}
	if len(found) == 1 {
		return found[0], nil
	}
	if r, err := parseRef(name); err == nil {
		if img, ok, err := s.FindOCI(r); err != nil {
			return store.Image{}, err
		} else if ok {
			return img, nil
		}
	}
	return store.Image{}, fmt.Errorf("image %q: %w", name, errNoImage)
}

// repoTags and repoDigests of img, as containerd reports them.
func repoTags(img store.Image) []string {
	var tags []string
	add := func(ref string) {
		r, err := imageref.Parse(ref)
		if err != nil || r.Tag == "" {
			return
		}
		t := r.Registry + "/" + r.Repository + ":" + r.Tag
		for _, x := range tags {
			if x == t {
				return
			}
		}
		tags = append(tags, t)
	}
	add(img.OCI.Reference)
	for _, t := range img.OCI.Tags {
		add(t)
	}
	return tags
}

func repoDigests(img store.Image) []string {
	r, err := imageref.Parse(img.OCI.Reference)
	if err != nil || img.OCI.Digest == "" {
		return nil
	}
	return []string{r.Registry + "/" + r.Repository + "@" + img.OCI.Digest}
}

// sameImage returns the stored OCI images that are img for the CRI: the
// store keeps a record per reference pulled, the CRI one image per config
// digest, with every tag.
func sameImage(st *store.Store, img store.Image) []store.Image {
	all, err := st.List()
	if err != nil {
		return []store.Image{img}
	}
	var out []store.Image
	for _, o := range all {
		if o.OCI != nil && criID(o) == criID(img) {
			out = append(out, o)
		}
	}
	if len(out) == 0 {
		out = []store.Image{img}
	}
	return out
}

func criImage(st *store.Store, img store.Image) *runtimeapi.Image {
	var tags, digests []string
	for _, o := range sameImage(st, img) {
		for _, t := range repoTags(o) {
			if !slices.Contains(tags, t) {
				tags = append(tags, t)
			}
		}
		for _, d := range repoDigests(o) {
			if !slices.Contains(digests, d) {
				digests = append(digests, d)
			}
		}
	}
	out := &runtimeapi.Image{
		Id:          criID(img),
		RepoTags:    tags,
		RepoDigests: digests,
		Size:        uint64(img.Size),
		Spec:        &runtimeapi.ImageSpec{Image: criID(img)},
	}
	// The user the image's config names, as the kubelet wants it: a
	// number as Uid, a name as Username.
	if m, err := st.Manifest(img.ID); err == nil && m.App != nil && m.App.User != "" {
		if n, err := strconv.ParseInt(m.App.User, 10, 64); err == nil {
			out.Uid = &runtimeapi.Int64Value{Value: n}
		} else {
			out.Username = m.App.User
		}
	}
	return out
}

func (s *Server) ListImages(ctx context.Context, req *runtimeapi.ListImagesRequest) (*runtimeapi.ListImagesResponse, error) {
	st, err := s.Store()
	if err != nil {
		return nil, grpcError(err)
	}
	imgs, err := st.List()
	if err != nil {
		return nil, grpcError(err)
	}
	want := req.GetFilter().GetImage().GetImage()
	out := &runtimeapi.ListImagesResponse{}
	seen := map[string]bool{}
	for _, img := range imgs {
		if img.OCI == nil || seen[criID(img)] {
			continue
		}
		seen[criID(img)] = true
		if want != "" {
			if f, err := findImage(st, want); err != nil || f.ID != img.ID {
				continue
			}
		}
		out.Images = append(out.Images, criImage(st, img))
	}
	return out, nil
}

func (s *Server) ImageStatus(ctx context.Context, req *runtimeapi.ImageStatusRequest) (*runtimeapi.ImageStatusResponse, error) {
	st, err := s.Store()
	if err != nil {
		return nil, grpcError(err)
	}
	img, err := findImage(st, req.GetImage().GetImage())
	if errors.Is(err, errNoImage) {
		return &runtimeapi.ImageStatusResponse{}, nil // the CRI's "not present"
	}
	if err != nil {
		return nil, grpcError(err)
	}
	return &runtimeapi.ImageStatusResponse{Image: criImage(st, img)}, nil
}

func (s *Server) PullImage(ctx context.Context, req *runtimeapi.PullImageRequest) (*runtimeapi.PullImageResponse, error) {
	name := req.GetImage().GetImage()
	if _, err := parseRef(name); err != nil {
		return nil, grpcError(fmt.Errorf("pull image: %w", err))
	}
	st, err := s.Store()
	if err != nil {
		return nil, grpcError(err)
	}
	id, err := s.Pull(ctx, st, name, req.GetAuth())
	if err != nil {
		if strings.Contains(err.Error(), "MANIFEST_UNKNOWN") || strings.Contains(err.Error(), "NAME_UNKNOWN") || strings.Contains(err.Error(), "not found") {
			err = fmt.Errorf("%w: %w", errNoImage, err)
		}
		return nil, grpcError(fmt.Errorf("pull image %s: %w", name, err))
	}
	img, err := st.Get(id)
	if err != nil {
		return nil, grpcError(err)
	}
	if img.OCI == nil {
		return nil, grpcError(fmt.Errorf("pull image %s: %w: not an OCI image", name, errInvalid))
	}
	// One image pulled by several tags keeps them all, as the CRI lists
	// them (the store records the last reference it was fetched by).
	if r, err := parseRef(name); err == nil && r.Digest == "" {
		if err := st.Tag(id, r); err != nil {
			return nil, grpcError(fmt.Errorf("pull image %s: %w", name, err))
		}
	}
	return &runtimeapi.PullImageResponse{ImageRef: criID(img)}, nil
}

func (s *Server) RemoveImage(ctx context.Context, req *runtimeapi.RemoveImageRequest) (*runtimeapi.RemoveImageResponse, error) {
	st, err := s.Store()
	if err != nil {
		return nil, grpcError(err)
	}
	img, err := findImage(st, req.GetImage().GetImage())
	if errors.Is(err, errNoImage) {
		return &runtimeapi.RemoveImageResponse{}, nil
	}
	if err != nil {
		return nil, grpcError(err)
	}
	// Every tag goes: the CRI's image is the config digest.
	for _, o := range sameImage(st, img) {
		if err := st.Remove(o.ID, func() (map[string]string, error) { return podctl.Images(s.Dir) }); err != nil && !errors.Is(err, store.ErrNotFound) {
			return nil, grpcError(fmt.Errorf("remove image %s: %w", o.ID, err))
		}
	}
	return &runtimeapi.RemoveImageResponse{}, nil
}

func (s *Server) ImageFsInfo(ctx context.Context, req *runtimeapi.ImageFsInfoRequest) (*runtimeapi.ImageFsInfoResponse, error) {
	dir := filepath.Join(s.Dir, "cas")
	var bytes, inodes uint64
	filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return nil
		}
		inodes++
		if d.Type().IsRegular() {
			if fi, err := d.Info(); err == nil {
				if st, ok := fi.Sys().(*syscall.Stat_t); ok {
					bytes += uint64(st.Blocks) * 512
				}
			}
		}
		return nil
	})
	now := time.Now().UnixNano()
	u := &runtimeapi.FilesystemUsage{
		Timestamp:  now,
		FsId:       &runtimeapi.FilesystemIdentifier{Mountpoint: dir},
		UsedBytes:  &runtimeapi.UInt64Value{Value: bytes},
		InodesUsed: &runtimeapi.UInt64Value{Value: inodes},
	}
	return &runtimeapi.ImageFsInfoResponse{ImageFilesystems: []*runtimeapi.FilesystemUsage{u}, ContainerFilesystems: []*runtimeapi.FilesystemUsage{u}}, nil
}
