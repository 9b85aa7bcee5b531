package evidence

import (
	"bytes"
	"errors"
	"slices"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/dpfdoctor/dpfdoctor/internal/dpf"
)

var (
	done    = State{Kind: StateTerminated, Reason: "Completed"}
	crash   = State{Kind: StateWaiting, Reason: "CrashLoopBackOff"}
	waiting = State{Kind: StateWaiting, Reason: "PodInitializing"}
	failed  = State{Kind: StateTerminated, Reason: "Error", ExitCode: 1}
)

func dmsPod(node, tag, cert string, states ...State) Pod {
	img := "nvcr.io/nvidia/doca/dpf-hostdriver:" + tag
	p := Pod{Name: node + "-dms", Node: node, Phase: "Pending", InitContainers: []Container{
		{Name: dpf.ContainerRshimPreflight, Image: img, State: states[0]},
		{Name: dpf.ContainerDMSInit, Image: img, Command: []string{"/bin/bash"}, Args: dpf.OperatorArgs(node, "127.0.10.1", cert), State: states[1]},
		{Name: dpf.ContainerConfigureVF, Image: img, State: waiting},
	}, Containers: []Container{{Name: dpf.ContainerDMS, State: waiting}}}
	if len(states) > 2 {
		p.InitContainers[1].LastState = states[2]
		p.InitContainers[1].RestartCount = 2
	}
	return p
}

func TestPodStatus(t *testing.T) {
	running := dmsPod("n", "v25.4.0", "TODO", done, done)
	running.Phase = "Running"
	running.InitContainers[2].State = done
	running.Containers[0].State = State{Kind: StateRunning}
	deleting := dmsPod("n", "v25.4.0", "TODO", done, crash, failed)
	deleting.Deleting = true
	for _, tc := range []struct {
		pod  Pod
		want string
	}{
		{dmsPod("n", "v25.4.0", "TODO", done, crash, failed), "Init:CrashLoopBackOff"},
		{dmsPod("n", "v25.4.0", "TODO", waiting, waiting), "Init:0/3"},
		{dmsPod("n", "v25.4.0", "TODO", done, failed), "Init:Error"},
		{dmsPod("n", "v25.4.0", "TODO", done, State{Kind: StateTerminated, ExitCode: 2}), "Init:ExitCode:2"},
		{running, "Running"},
		{deleting, "Terminating"},
		{Pod{}, "Unknown"},
	} {
		if got := tc.pod.Status(); got != tc.want {
			t.Errorf("%s: Status() = %q", tc.want, got)
		}
	}
}

func TestPodFacts(t *testing.T) {
	p := dmsPod("n1", "v25.7.0", "none", done, crash, failed)
	if p.Script("v25.4.0") != dpf.ScriptE || p.Version("v25.4.0") != "v25.7.0" || !p.Args().CertPath() || p.ScriptNamespace() != dpf.DefaultNamespace {
		t.Errorf("facts: %s %s %+v", p.Script(""), p.Version(""), p.Args())
	}
	p.InitContainers[1].Image = "registry/hostdriver@sha256:abc"
	p.Labels = map[string]string{dpf.VersionLabel: "v25.7.1"}
	if p.Version("v25.4.0") != "v25.7.1" {
		t.Errorf("a digest falls back to the version label: %s", p.Version("v25.4.0"))
	}
	p.Labels = nil
	if p.Version("v25.4.0") != "v25.4.0" {
		t.Errorf("then to the cluster version: %s", p.Version("v25.4.0"))
	}
	if c, ok := p.Blocking(); !ok || c.Name != dpf.ContainerDMSInit || !p.Started() || p.Restarts() != 2 {
		t.Errorf("blocking %s, started %t, restarts %d", c.Name, p.Started(), p.Restarts())
	}
}

// Pods that fail the same way share a signature whatever their node; a
// different dmsinit (image) or mode never does.
func TestSignature(t *testing.T) {
	rshim := func(node string) Pod {
		return dmsPod(node, "v25.4.0", "TODO", crash, waiting,
			State{}) // rshim-preflight crashes
	}
	a, b := rshim("worker-1"), rshim("worker-2")
	a.InitContainers[0].LastState = State{Kind: StateTerminated, Reason: "Error", ExitCode: 1, Message: "0000:3b:00.0"}
	b.InitContainers[0].LastState = State{Kind: StateTerminated, Reason: "Error", ExitCode: 1, Message: "0000:af:00.0"}
	if a.Signature() != b.Signature() {
		t.Errorf("%q != %q", a.Signature(), b.Signature())
	}
	x := dmsPod("a", "v25.4.0", "TODO", done, crash, failed)
	for _, y := range []Pod{dmsPod("b", "v25.7.0", "TODO", done, crash, failed), dmsPod("b", "v25.4.0", "none", done, crash, failed),
		dmsPod("b", "v25.4.0", "TODO", waiting, waiting)} {
		if x.Signature() == y.Signature() {
			t.Errorf("same signature %q", x.Signature())
		}
	}
	// A waiting message naming the pod, its UID and a back-off groups alike;
	// another image or DPF version label does not.
	msg := func(node, uid, backoff string) Pod {
		p := dmsPod(node, "v25.4.0", "TODO", done, waiting)
		p.InitContainers[1].State.Message = "back-off " + backoff + " restarting failed container=dms-init pod=" + p.Name + "_ns(" + uid + ")"
		return p
	}
	m1, m2 := msg("worker-1", "0b4c3a1e-6f1d-4c58-9a51-0f4d1c3b2a10", "10s"), msg("worker-2", "7f0e9d2c-1a2b-4c3d-8e9f-a0b1c2d3e4f5", "2m40s")
	if m1.Signature() != m2.Signature() {
		t.Errorf("%q != %q", m1.Signature(), m2.Signature())
	}
	other := msg("worker-2", "7f0e9d2c-1a2b-4c3d-8e9f-a0b1c2d3e4f5", "10s")
	other.InitContainers[1].Image = "registry.example/dpf-hostdriver:v25.4.0"
	labelled := msg("worker-2", "7f0e9d2c-1a2b-4c3d-8e9f-a0b1c2d3e4f5", "10s")
	for i := range labelled.InitContainers {
		labelled.InitContainers[i].Image = "nvcr.io/nvidia/doca/dpf-hostdriver:latest"
	}
	labelled.Labels = map[string]string{dpf.VersionLabel: "v25.7.0"}
	unlabelled := msg("worker-3", "7f0e9d2c-1a2b-4c3d-8e9f-a0b1c2d3e4f5", "10s")
	for i := range unlabelled.InitContainers {
		unlabelled.InitContainers[i].Image = "nvcr.io/nvidia/doca/dpf-hostdriver:latest"
	}
	if other.Signature() == m1.Signature() || labelled.Signature() == unlabelled.Signature() {
		t.Errorf("image or version not in the signature: %q", other.Signature())
	}
	if !IsPCIAddress("find 0000:3b:00.0 in /dev/rshim0") || IsPCIAddress("rshim busy") {
		t.Error("IsPCIAddress")
	}
}

func TestPodFrom(t *testing.T) {
	p := PodFrom(&corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "w9-dms", Labels: map[string]string{dpf.ComponentLabel: dpf.ComponentDMS}},
		Spec: corev1.PodSpec{InitContainers: []corev1.Container{{Name: dpf.ContainerDMSInit, Image: "x:v25.4.0", Env: []corev1.EnvVar{
			{Name: "KUBERNETES_SERVICE_HOST", Value: "127.1.1.1"},
			{Name: "PASSWORD", Value: "hunter2"},
			{Name: "TOKEN", ValueFrom: &corev1.EnvVarSource{SecretKeyRef: &corev1.SecretKeySelector{LocalObjectReference: corev1.LocalObjectReference{Name: "s"}, Key: "k"}}},
		}}}},
		Status: corev1.PodStatus{Phase: corev1.PodPending, Conditions: []corev1.PodCondition{{Type: corev1.PodReady, Status: corev1.ConditionFalse}}},
	})
	if p.Node != "w9" || p.Component != dpf.ComponentDMS || p.Ready {
		t.Errorf("%+v", p)
	}
	env := p.InitContainers[0].Env
	if env[0].Value != "127.1.1.1" || env[1].Value != Masked || env[2].Value != "" || env[2].From != "secret s key k" {
		t.Errorf("env not redacted as expected: %+v", env)
	}
}

func TestParse(t *testing.T) {
	for _, bad := range []string{"", "{", "schemaVersion: nope", `{"schemaVersion":"dpfdoctor.dev/evidence/v1alpha1","bogus":1}`, "pods: [1, 2]"} {
		if _, err := Parse([]byte(bad)); !errors.Is(err, ErrMalformed) {
			t.Errorf("Parse(%q) = %v", bad, err)
		}
	}
	b, err := Parse([]byte("schemaVersion: dpfdoctor.dev/evidence/v1alpha1\npods: [{name: a-dms, node: a}]\n"))
	if err != nil || b.Pods[0].Node != "a" {
		t.Fatalf("%+v %v", b, err)
	}
}

// The support archive round-trips and masks key material in logs.
func TestArchive(t *testing.T) {
	b := &Bundle{SchemaVersion: SchemaVersion, Pods: []Pod{{Name: "a-dms", Node: "a"}},
		Logs: []Log{{Pod: "a-dms", Container: "dms-init", Instance: InstanceCurrent,
			Text: redact("line\n-----BEGIN PRIVATE KEY-----\nMIIEvQIBADANBgkqhkiG9w0BAQEFAASC\n-----END PRIVATE KEY-----\nafter\n")}}}
	var buf bytes.Buffer
	if err := b.WriteArchive(&buf, ArchiveFile{Name: "diagnosis.md", Data: []byte("# d")}); err != nil {
		t.Fatal(err)
	}
	if strings.Contains(buf.String(), "MIIEvQ") {
		t.Fatal("archive holds key material")
	}
	got, err := ReadArchive(bytes.NewReader(buf.Bytes()))
	if err != nil || got.Pods[0].Name != "a-dms" || !strings.Contains(got.Logs[0].Text, "[REDACTED PEM BLOCK]") || !strings.Contains(got.Logs[0].Text, "after") {
		t.Fatalf("%+v %v", got, err)
	}
	if _, err := ReadArchive(strings.NewReader("not gzip")); !errors.Is(err, ErrMalformed) {
		t.Errorf("ReadArchive(garbage) = %v", err)
	}
}

func TestSampleAndInstances(t *testing.T) {
	for _, tc := range []struct{ names, want []string }{
		{[]string{"w-1", "w-2"}, []string{"w-1", "w-2"}},
		// natural order: w-2 before w-10; first two and last
		{[]string{"w-1", "w-10", "w-11", "w-2", "w-3", "w-9"}, []string{"w-1", "w-2", "w-11"}},
		{[]string{"rack02-n7", "rack10-n1", "rack2-n10", "rack2-n9"}, []string{"rack02-n7", "rack2-n9", "rack10-n1"}},
	} {
		if got := sample(tc.names); !slices.Equal(got, tc.want) {
			t.Errorf("sample(%v) = %v, want %v", tc.names, got, tc.want)
		}
	}
	if got := Instances(Container{State: crash, LastState: failed}); !slices.Equal(got, []string{InstanceCurrent}) {
		t.Errorf("crash loop: %v", got)
	}
	if got := Instances(Container{State: State{Kind: StateRunning}, LastState: failed}); len(got) != 2 {
		t.Errorf("running again: %v", got)
	}
}

func TestAllowedFor(t *testing.T) {
	c := AccessCheck{Allowed: false, NodeOverrides: []NodeOverride{{Node: "a", Allowed: true}}}
	if !c.AllowedFor("a") || c.AllowedFor("b") || !c.Known() {
		t.Error("AllowedFor")
	}
}

func FuzzParse(f *testing.F) {
	f.Add([]byte(`{"schemaVersion":"dpfdoctor.dev/evidence/v1alpha1","pods":[{"name":"a"}]}`))
	f.Add([]byte("schemaVersion: dpfdoctor.dev/evidence/v1alpha1\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		b, err := Parse(data)
		if err != nil {
			return
		}
		for _, p := range b.Pods {
			_, _, _ = p.Status(), p.Signature(), p.Calls(b.Install.Version)
		}
	})
}
