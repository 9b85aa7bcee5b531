// Package buildinfo says which dpfdoctor this is: version, commit and build
// date. Release builds set them with the linker (.goreleaser.yaml, the
// Dockerfile):
//
//	-ldflags "-X github.com/dpfdoctor/dpfdoctor/internal/buildinfo.version=v1.2.3
//	          -X github.com/dpfdoctor/dpfdoctor/internal/buildinfo.commit=<sha>
//	          -X github.com/dpfdoctor/dpfdoctor/internal/buildinfo.date=<RFC 3339>"
//
// Any other build falls back to what the Go toolchain stamped into the binary
// (runtime/debug.ReadBuildInfo): `go install …@v1.2.3` records the module
// version, a build in a git checkout the VCS revision and commit time.
package buildinfo

import (
	"cmp"
	"runtime"
	"runtime/debug"
)

// Set only by the linker (-X); never written at run time.
var version, commit, date string

// SchemaVersion identifies the layout of Info in `dpfdoctor version -o json`.
const SchemaVersion = "dpfdoctor.dev/version/v1alpha1"

// Info is dpfdoctor's build: `dpfdoctor version -o json|yaml`, SARIF's
// driver.version and the guard's dpfdoctor_build_info metric.
type Info struct {
	SchemaVersion string `json:"schemaVersion"`
	// Version is the release ("v1.2.3"), or "dev" for a local build.
	Version string `json:"version"`
	// Commit is the VCS revision, or "unknown".
	Commit string `json:"commit"`
	// BuildDate is when the commit was made or the release built (RFC 3339),
	// or "unknown".
	BuildDate string `json:"buildDate"`
	GoVersion string `json:"goVersion"`
	Platform  string `json:"platform"`
}

// Get returns the linker's values where set, else the toolchain's.
func Get() Info {
	v, c, d := version, commit, date
	if bi, ok := debug.ReadBuildInfo(); ok {
		if bi.Main.Version != "(devel)" {
			v = cmp.Or(v, bi.Main.Version)
		}
		for _, s := range bi.Settings {
			switch s.Key {
			case "vcs.revision":
				c = cmp.Or(c, s.Value)
			case "vcs.time":
				d = cmp.Or(d, s.Value)
			}
		}
	}
	return Info{SchemaVersion: SchemaVersion, Version: cmp.Or(v, "dev"), Commit: cmp.Or(c, "unknown"),
		BuildDate: cmp.Or(d, "unknown"), GoVersion: runtime.Version(), Platform: runtime.GOOS + "/" + runtime.GOARCH}
}
