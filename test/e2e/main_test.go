// Package e2e runs the dpfdoctor binary as a user would, against simulated
// clusters, and checks exit codes, messages and that nothing panics.
package e2e

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"log"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/go-logr/logr"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
	ctrllog "sigs.k8s.io/controller-runtime/pkg/log"

	"github.com/dpfdoctor/dpfdoctor/internal/sim"
)

// suite is what every test in this package shares; set once in TestMain.
// The tests run in parallel: they read the clusters, or act as users of
// their own, and a test that writes starts a sim of its own.
type suite struct {
	bin     string
	dir     string
	dpf     *sim.Cluster // v25.4.0, failing pods
	bare    *rest.Config // a cluster without DPF
	partial *rest.Config // DPF CRDs but no operator
}

var s suite

func TestMain(m *testing.M) {
	ctrllog.SetLogger(logr.Discard())
	flag.Parse()
	if testing.Short() { // every test skips: they all need the clusters
		os.Exit(m.Run())
	}
	code, err := run(m)
	if err != nil {
		log.Printf("e2e: %v", err)
		code = 1
	}
	os.Exit(code)
}

func run(m *testing.M) (int, error) {
	dir, err := os.MkdirTemp("", "dpfdoctor-e2e-")
	if err != nil {
		return 1, err
	}
	defer os.RemoveAll(dir)
	s.dir = dir
	s.bin = filepath.Join(dir, "dpfdoctor")
	if sim.Assets() == "" {
		return 1, sim.ErrAssets
	}
	// The binary and the three API servers take seconds each, mostly
	// waiting: build and start them side by side.
	var (
		wg   sync.WaitGroup
		errs [4]error
		envs [2]*envtest.Environment
		cfgs [2]*rest.Config
	)
	wg.Go(func() {
		// -s -w: no symbol table or DWARF, as the release; half the link time.
		build := exec.Command("go", "build", "-ldflags", "-s -w", "-o", s.bin, "github.com/dpfdoctor/dpfdoctor/cmd/dpfdoctor")
		build.Stderr = os.Stderr
		if err := build.Run(); err != nil {
			errs[0] = fmt.Errorf("build: %w", err)
		}
	})
	wg.Go(func() {
		s.dpf, errs[1] = sim.Start(context.Background(), sim.Options{Nodes: 3, Scenario: "hypothetical-secrets-forbidden", TimeScale: 0.05, SecretWaitAttempts: 1, KubectlMaxNodes: -1})
	})
	for i, crds := range [][]*apiextensionsv1.CustomResourceDefinition{nil, sim.CRDs()} {
		envs[i] = &envtest.Environment{CRDInstallOptions: envtest.CRDInstallOptions{CRDs: crds}}
		wg.Go(func() { cfgs[i], errs[2+i] = envs[i].Start() })
	}
	wg.Wait()
	if s.dpf != nil {
		defer s.dpf.Stop()
	}
	for i := range envs {
		if cfgs[i] != nil {
			defer envs[i].Stop() //nolint:gocritic // both servers serve every test and stop when run returns
		}
	}
	if err := errors.Join(errs[:]...); err != nil {
		return 1, err
	}
	s.bare, s.partial = cfgs[0], cfgs[1]
	return m.Run(), nil
}

// parallel runs an e2e test beside the others; under -short, where TestMain
// starts no cluster, it skips.
func parallel(t *testing.T) {
	t.Helper()
	t.Parallel()
	if testing.Short() {
		t.Skip("needs the suite's API servers (envtest); skipped under -short")
	}
}

// result is one run of the binary.
type result struct {
	code           int
	stdout, stderr string
}

// dpfdoctor runs the binary with args and a kubeconfig file (may be "").
func dpfdoctor(t *testing.T, kubeconfig string, args ...string) result {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, s.bin, args...)
	cmd.Dir = t.TempDir()
	cmd.Env = []string{"HOME=" + cmd.Dir, "PATH=" + os.Getenv("PATH"), "KUBEBUILDER_ASSETS=" + os.Getenv("KUBEBUILDER_ASSETS")}
	if kubeconfig != "" {
		cmd.Env = append(cmd.Env, "KUBECONFIG="+kubeconfig)
	}
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	r := result{stdout: out.String(), stderr: errb.String()}
	if ee, ok := err.(*exec.ExitError); ok {
		r.code = ee.ExitCode()
		if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
			t.Fatalf("dpfdoctor %v died of %v", args, ws.Signal())
		}
	} else if err != nil {
		t.Fatalf("run dpfdoctor %v: %v", args, err)
	}
	for _, bad := range []string{"panic:", "goroutine ", "runtime error"} {
		if strings.Contains(r.stderr, bad) || strings.Contains(r.stdout, bad) {
			t.Fatalf("dpfdoctor %v printed %q:\n%s%s", args, bad, r.stdout, r.stderr)
		}
	}
	return r
}

// kubeconfig writes a kubeconfig for cfg (with overrides) and returns its path.
func kubeconfig(t *testing.T, cfg *rest.Config, edit func(*clientcmdapi.Config)) string {
	t.Helper()
	kc := clientcmdapi.NewConfig()
	kc.Clusters["c"] = &clientcmdapi.Cluster{Server: cfg.Host, CertificateAuthorityData: cfg.CAData}
	kc.AuthInfos["u"] = &clientcmdapi.AuthInfo{ClientCertificateData: cfg.CertData, ClientKeyData: cfg.KeyData, Token: cfg.BearerToken}
	kc.Contexts["ctx"] = &clientcmdapi.Context{Cluster: "c", AuthInfo: "u"}
	kc.CurrentContext = "ctx"
	if edit != nil {
		edit(kc)
	}
	path := filepath.Join(t.TempDir(), "kubeconfig")
	if err := clientcmd.WriteToFile(*kc, path); err != nil {
		t.Fatal(err)
	}
	return path
}
