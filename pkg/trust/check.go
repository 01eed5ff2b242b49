package trust

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
)

// Check walks the keystore and says what is wrong with it, one line per
// path: anything but directories and key files (a symlink could trust a
// file someone else controls), files or directories others may write
// (or not owned by root, when checked as root), key files that do not
// hold exactly one key or whose name is not that key's fingerprint.
// A missing keystore is fine: nothing is trusted.
func (k *Keystore) Check() ([]string, error) {
	var probs []string
	err := filepath.WalkDir(k.dir, func(path string, d fs.DirEntry, err error) error {
		if errors.Is(err, os.ErrNotExist) && path == k.dir {
			return fs.SkipDir
		}
		if err != nil {
			return err
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		bad := func(what string) { probs = append(probs, path+": "+what) }
		if !fi.IsDir() && !fi.Mode().IsRegular() {
			bad("neither a directory nor a key file")
			return nil
		}
		if fi.Mode().Perm()&0o022 != 0 {
			bad(fmt.Sprintf("mode %04o lets others write it", fi.Mode().Perm()))
		}
		if st, ok := fi.Sys().(*syscall.Stat_t); ok && os.Geteuid() == 0 && st.Uid != 0 {
			bad(fmt.Sprintf("owned by uid %d, not root", st.Uid))
		}
		if fi.IsDir() || strings.HasPrefix(d.Name(), ".") {
			return nil
		}
		f, err := os.Open(path)
		if err != nil {
			return err
		}
		defer f.Close()
		el, err := readKeyRing(f)
		switch {
		case err != nil:
			bad(err.Error())
		case len(el) != 1:
			bad(fmt.Sprintf("holds %d keys, want 1", len(el)))
		case fingerprint(el[0]) != d.Name():
			bad("named other than its key's fingerprint " + fingerprint(el[0]))
		}
		return nil
	})
	if err != nil {
		return probs, fmt.Errorf("check keystore: %w", err)
	}
	return probs, nil
}
