package store

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"hash"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// treeHashFile, inside a rendered tree, holds the tree's hash. It is
// written before the tree is renamed into place, so a complete tree has it.
const treeHashFile = "treehash"

const treeHashPrefix = "sha256-"

// TreeHash returns the hash of the rendered tree at dir (its manifest and
// rootfs; the treehash file itself is left out). Entries are visited in
// lexical order and each contributes one line:
//
//	<quoted path> <st_mode octal> <uid> <gid> <what> <xattrs>
//
// where <what> is the sha256 of a regular file's content with its size, a
// symlink's quoted target, a device's rdev, or "-"; and <xattrs> lists
// name=hex(value) sorted by name, except security.selinux, which the host
// assigns. Times, inode numbers and link counts are left out, so two
// renders of one blob hash the same.
func TreeHash(dir string) (string, error) {
	sum := sha256.New()
	file := sha256.New()
	buf := make([]byte, 256<<10)
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(dir, path)
		if err != nil {
			return err
		}
		if rel == "." || rel == treeHashFile {
			return nil
		}
		var st unix.Stat_t
		if err := unix.Lstat(path, &st); err != nil {
			return err
		}
		what := "-"
		switch st.Mode & unix.S_IFMT {
		case unix.S_IFREG:
			if what, err = hashContent(path, file, buf); err != nil {
				return err
			}
			what += " " + strconv.FormatInt(st.Size, 10)
		case unix.S_IFLNK:
			target, err := os.Readlink(path)
			if err != nil {
				return err
			}
			what = strconv.Quote(target)
		case unix.S_IFCHR, unix.S_IFBLK:
			what = strconv.FormatUint(st.Rdev, 10)
		}
		xattrs, err := listXattrs(path)
		if err != nil {
			return err
		}
		fmt.Fprintf(sum, "%s %o %d %d %s %s\n", strconv.Quote(rel), st.Mode, st.Uid, st.Gid, what, xattrs)
		return nil
	})
	if err != nil {
		return "", fmt.Errorf("hash tree %s: %w", dir, err)
	}
	return treeHashPrefix + hex.EncodeToString(sum.Sum(nil)), nil
}

func hashContent(path string, h hash.Hash, buf []byte) (string, error) {
	f, err := os.OpenFile(path, os.O_RDONLY|unix.O_NOFOLLOW|unix.O_NONBLOCK, 0)
	if err != nil {
		return "", err
	}
	defer f.Close()
	h.Reset()
	if _, err := io.CopyBuffer(h, f, buf); err != nil {
		return "", err
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// listXattrs returns path's xattrs as sorted name=hex(value) pairs.
func listXattrs(path string) (string, error) {
	size, err := unix.Llistxattr(path, nil)
	if err != nil || size == 0 {
		if err == unix.ENOTSUP {
			err = nil
		}
		return "", err
	}
	names := make([]byte, size)
	if size, err = unix.Llistxattr(path, names); err != nil {
		return "", err
	}
	var pairs []string
	for _, name := range strings.Split(strings.TrimRight(string(names[:size]), "\x00"), "\x00") {
		if name == "" || name == "security.selinux" {
			continue
		}
		n, err := unix.Lgetxattr(path, name, nil)
		if err != nil {
			return "", err
		}
		val := make([]byte, n)
		if n, err = unix.Lgetxattr(path, name, val); err != nil {
			return "", err
		}
		pairs = append(pairs, name+"="+hex.EncodeToString(val[:n]))
	}
	slices.Sort(pairs)
	return strings.Join(pairs, ","), nil
}
