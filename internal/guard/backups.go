package guard

import (
	"os"
	"path/filepath"
	"sort"

	"github.com/go-logr/logr"
)

// pruneBackups keeps the newest keep backup directories under root. Their
// names are UTC timestamps, so name order is age order.
func pruneBackups(root string, keep int, log logr.Logger) {
	entries, err := os.ReadDir(root)
	if err != nil {
		return
	}
	var dirs []string
	for _, e := range entries {
		if e.IsDir() {
			dirs = append(dirs, e.Name())
		}
	}
	if len(dirs) <= keep {
		return
	}
	sort.Strings(dirs)
	for _, d := range dirs[:len(dirs)-keep] {
		if err := os.RemoveAll(filepath.Join(root, d)); err != nil {
			log.Info("could not remove an old backup", "dir", d, "error", err.Error())
		}
	}
}
