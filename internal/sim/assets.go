package sim

import (
	"os"
	"path/filepath"
	"runtime"
)

// Pinned envtest versions; keep in step with hack/envtest.sh.
const (
	envtestK8s  = "v1.31.4"
	envtestEtcd = "v3.5.35"
)

// Assets returns the envtest binary directory: $KUBEBUILDER_ASSETS, else the
// cache hack/envtest.sh builds into. It sets KUBEBUILDER_ASSETS when it
// finds the cache, so envtest uses it. "" means not found.
func Assets() string {
	if d := os.Getenv("KUBEBUILDER_ASSETS"); d != "" {
		return d
	}
	base := os.Getenv("XDG_CACHE_HOME")
	if base == "" {
		home, err := os.UserHomeDir()
		if err != nil {
			return ""
		}
		base = filepath.Join(home, ".cache")
	}
	d := filepath.Join(base, "dpfdoctor", "envtest", envtestK8s+"-"+envtestEtcd+"-"+runtime.Version())
	for _, b := range []string{"kube-apiserver", "etcd"} {
		if !fileExists(filepath.Join(d, b)) {
			return ""
		}
	}
	_ = os.Setenv("KUBEBUILDER_ASSETS", d)
	return d
}
