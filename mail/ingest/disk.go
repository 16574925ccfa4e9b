package ingest

import (
	"fmt"

	"golang.org/x/sys/unix"
)

// StatDisk is the Disk of the file system holding Path (statfs(2)).
type StatDisk struct{ Path string }

// Free returns the bytes available to an unprivileged writer.
func (d StatDisk) Free() (uint64, error) {
	var st unix.Statfs_t
	if err := unix.Statfs(d.Path, &st); err != nil {
		return 0, fmt.Errorf("statfs %s: %w", d.Path, err)
	}
	return st.Bavail * uint64(st.Bsize), nil
}
