package mount

import (
	"fmt"
	"strings"

	"github.com/moby/sys/mountinfo"
	"golang.org/x/sys/unix"
)

// Propagation says how the mount that holds path propagates, as this
// process's mount namespace sees it: shared (it is in a peer group, so
// mounts below it reach its peers and theirs reach it) and slave (it
// receives from a master's peer group).
func Propagation(path string) (shared, slave bool, err error) {
	var st unix.Statx_t
	if err := unix.Statx(unix.AT_FDCWD, path, 0, unix.STATX_MNT_ID, &st); err != nil {
		return false, false, fmt.Errorf("mount of %s: %w", path, err)
	}
	id := int(st.Mnt_id)
	infos, err := mountinfo.GetMounts(func(i *mountinfo.Info) (skip, stop bool) { return i.ID != id, i.ID == id })
	if err != nil {
		return false, false, fmt.Errorf("mount of %s: %w", path, err)
	}
	if len(infos) == 0 {
		return false, false, fmt.Errorf("mount of %s: mount %d not in mountinfo", path, id)
	}
	shared, slave = propagation(infos[0].Optional)
	return shared, slave, nil
}

// propagation reads mountinfo's optional fields ("shared:N master:M").
func propagation(optional string) (shared, slave bool) {
	for _, f := range strings.Fields(optional) {
		shared = shared || strings.HasPrefix(f, "shared:")
		slave = slave || strings.HasPrefix(f, "master:")
	}
	return shared, slave
}
