//go:build e2e

package tests

import (
	"archive/tar"
	"compress/gzip"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"strings"

	"github.com/appc/spec/schema"

	"github.com/skiffpod/skiff/pkg/pod"
)

// stage1Image returns the image file of a --stage1 value the suite uses:
// a path as is, a short name as the default image beside skiff.
func stage1Image(stage1 string) string {
	if strings.Contains(stage1, "/") {
		return stage1
	}
	return filepath.Join(toolDir, "stage1-"+stage1+".aci")
}

// extractEntrypoints copies the entrypoints a stage1 image's manifest
// names out of the image into dir and returns, by entrypoint, the file to
// execute (called with argv[0] set to the entrypoint's base name, as a
// multi-call stage1 expects).
func extractEntrypoints(aciPath, dir string) (map[string]string, error) {
	hdrs := map[string]*tar.Header{}
	var m schema.ImageManifest
	err := walkACI(aciPath, func(h *tar.Header, r io.Reader) error {
		hdrs[path.Clean("/"+h.Name)] = h
		if path.Clean(h.Name) == "manifest" {
			return json.NewDecoder(r).Decode(&m)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	s1, err := pod.ParseStage1(&m)
	if err != nil {
		return nil, err
	}
	// Resolve each entrypoint to the regular file it is, following
	// symlinks and hard links inside the image.
	want := map[string]string{} // image path -> file in dir
	eps := map[string]string{}
	for _, ep := range append([]string{pod.EntrypointRun, pod.EntrypointEnter, pod.EntrypointStop, pod.EntrypointGC}, pod.AppEntrypoints...) {
		rel, err := s1.Entrypoint(ep)
		if err != nil {
			continue // optional entrypoint
		}
		p := path.Join("/rootfs", rel)
		for i := 0; ; i++ {
			h, ok := hdrs[p]
			if !ok || i > 40 {
				return nil, fmt.Errorf("%s: entrypoint %s: %s is not in the image", aciPath, ep, p)
			}
			if h.Typeflag == tar.TypeSymlink {
				p = path.Join(path.Dir(p), h.Linkname)
				if path.IsAbs(h.Linkname) {
					p = path.Join("/rootfs", h.Linkname)
				}
				continue
			}
			if h.Typeflag == tar.TypeLink {
				p = path.Clean("/" + h.Linkname)
				continue
			}
			break
		}
		if _, ok := want[p]; !ok {
			want[p] = filepath.Join(dir, fmt.Sprintf("bin%d", len(want)))
		}
		eps[ep] = want[p]
	}
	err = walkACI(aciPath, func(h *tar.Header, r io.Reader) error {
		out, ok := want[path.Clean("/"+h.Name)]
		if !ok {
			return nil
		}
		f, err := os.OpenFile(out, os.O_CREATE|os.O_WRONLY|os.O_EXCL, 0o755)
		if err != nil {
			return err
		}
		_, err = io.Copy(f, r)
		return errors.Join(err, f.Close())
	})
	return eps, err
}

func walkACI(aciPath string, fn func(*tar.Header, io.Reader) error) error {
	f, err := os.Open(aciPath)
	if err != nil {
		return err
	}
	defer f.Close()
	var r io.Reader = f
	if gz, err := gzip.NewReader(f); err == nil {
		r = gz
	} else if _, err := f.Seek(0, io.SeekStart); err != nil {
		return err
	}
	tr := tar.NewReader(r)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return fmt.Errorf("read %s: %w", aciPath, err)
		}
		if err := fn(h, tr); err != nil {
			return err
		}
	}
}
