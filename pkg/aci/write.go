package aci

import (
	"archive/tar"
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"syscall"
	"time"

	"github.com/appc/spec/schema"
)

// Write writes an uncompressed ACI built from m and the directory tree
// rootfs to w. Entries come in lexical order with numeric owners only, and
// files sharing an inode become hardlinks, so equal trees give equal bytes
// (and equal image IDs). acKind and acVersion are filled in when unset.
func Write(w io.Writer, m *schema.ImageManifest, rootfs string) error {
	if err := write(w, m, rootfs); err != nil {
		return fmt.Errorf("write image %q: %w", m.Name, err)
	}
	return nil
}

func write(w io.Writer, m *schema.ImageManifest, rootfs string) error {
	mc := *m
	if mc.ACKind == "" {
		mc.ACKind = schema.ImageManifestKind
	}
	if mc.ACVersion.Empty() {
		mc.ACVersion = schema.AppContainerVersion
	}
	data, err := json.Marshal(mc)
	if err != nil {
		return err
	}
	tw := tar.NewWriter(w)
	if err := tw.WriteHeader(&tar.Header{
		Name: "manifest", Typeflag: tar.TypeReg, Mode: 0o644, Size: int64(len(data)),
		ModTime: time.Unix(0, 0), Format: tar.FormatPAX,
	}); err != nil {
		return err
	}
	if _, err := tw.Write(data); err != nil {
		return err
	}
	links := map[[2]uint64]string{} // (dev, ino) -> first name
	err = filepath.WalkDir(rootfs, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(rootfs, p)
		if err != nil {
			return err
		}
		name := filepath.ToSlash(filepath.Join("rootfs", rel))
		fi, err := d.Info()
		if err != nil {
			return err
		}
		var target string
		if fi.Mode()&fs.ModeSymlink != 0 {
			if target, err = os.Readlink(p); err != nil {
				return err
			}
		}
		h, err := tar.FileInfoHeader(fi, target)
		if err != nil {
			return err
		}
		h.Name, h.Uname, h.Gname = name, "", ""
		h.AccessTime, h.ChangeTime = time.Time{}, time.Time{}
		h.Format = tar.FormatPAX // keeps sub-second mtimes and long names
		if h.Typeflag == tar.TypeDir {
			h.Name += "/"
		}
		if st, ok := fi.Sys().(*syscall.Stat_t); ok && h.Typeflag == tar.TypeReg && st.Nlink > 1 {
			key := [2]uint64{st.Dev, st.Ino}
			if first, ok := links[key]; ok {
				h.Typeflag, h.Linkname, h.Size = tar.TypeLink, first, 0
			} else {
				links[key] = name
			}
		}
		if err := tw.WriteHeader(h); err != nil {
			return err
		}
		if h.Typeflag != tar.TypeReg {
			return nil
		}
		f, err := os.Open(p)
		if err != nil {
			return err
		}
		defer f.Close()
		_, err = io.CopyN(tw, f, h.Size)
		return err
	})
	if err != nil {
		return err
	}
	return tw.Close()
}
