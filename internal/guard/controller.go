package guard

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/go-logr/logr"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/sets"
	"k8s.io/client-go/util/workqueue"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"
	"sigs.k8s.io/controller-runtime/pkg/recorder"
	"sigs.k8s.io/controller-runtime/pkg/source"

	"github.com/dpfdoctor/dpfdoctor/internal/apply"
	"github.com/dpfdoctor/dpfdoctor/internal/diagnose"
	"github.com/dpfdoctor/dpfdoctor/internal/dpf"
	"github.com/dpfdoctor/dpfdoctor/internal/evidence"
	"github.com/dpfdoctor/dpfdoctor/internal/kube"
	"github.com/dpfdoctor/dpfdoctor/internal/preflight"
)

// reconciler is the guard's one controller. Every watched change maps to
// the same key, so bursts (5,000 pods starting) collapse into a few
// reconciles, each over the whole cached state.
type reconciler struct {
	opts     Options
	cache    client.Reader
	clients  *kube.Clients
	recorder recorder.EventRecorder
	metrics  *metrics
	log      logr.Logger

	pods           *podIndex
	fetch          *fetcher
	tracker        *tracker
	repair         *repairer
	crd            crdInfo
	paused         string // the pause annotation's value last acknowledged
	checkedVersion string // the DPF version checkUpgrade last checked
}

// addReconciler registers the controller and its watches, each through the
// shared cache, each with a predicate that drops changes the guard does not
// read.
func (g *Guard) addReconciler(cl *kube.Clients) error {
	o, mgr := g.opts, g.mgr
	r := &reconciler{
		opts:     o,
		cache:    mgr.GetClient(),
		clients:  cl,
		recorder: mgr.GetEventRecorder(ControllerName), // events.k8s.io/v1
		metrics:  g.metrics,
		log:      o.Logger,
		fetch:    newFetcher(cl.Kube, o.Namespace, o.MaxLogsPerSignature),
		tracker:  newTracker(),
	}
	r.repair = newRepairer(r)
	var err error
	if r.pods, err = newPodIndex(context.Background(), mgr.GetCache()); err != nil {
		return err
	}
	key := reconcile.Request{NamespacedName: types.NamespacedName{Namespace: r.opts.Namespace, Name: "dms"}}
	all := handler.EnqueueRequestsFromMapFunc(func(context.Context, client.Object) []reconcile.Request {
		return []reconcile.Request{key}
	})
	return builder.ControllerManagedBy(mgr).
		Named(ControllerName).
		WithOptions(controller.Options{
			MaxConcurrentReconciles: 1,
			RateLimiter:             workqueue.NewTypedItemExponentialFailureRateLimiter[reconcile.Request](time.Second, 5*time.Minute),
		}).
		WithLogConstructor(func(*reconcile.Request) logr.Logger { return r.log }).
		WatchesRawSource(source.Channel(r.pods.trigger, all)).
		Watches(&corev1.Node{}, all, builder.WithPredicates(predicate.LabelChangedPredicate{})).
		Watches(&rbacv1.Role{}, all, builder.WithPredicates(predicate.ResourceVersionChangedPredicate{})).
		Watches(&rbacv1.RoleBinding{}, all, builder.WithPredicates(predicate.ResourceVersionChangedPredicate{})).
		Watches(newOperatorConfig(), all, builder.WithPredicates(predicate.Or(predicate.GenerationChangedPredicate{},
			predicate.LabelChangedPredicate{}, predicate.AnnotationChangedPredicate{}))).
		Complete(r)
}

// podChanged reports whether a pod update changes what the guard reads: the
// state kubectl shows, readiness, restarts, or the pod itself.
func podChanged(a, b *corev1.Pod) bool {
	return a.UID != b.UID || dpf.PodState(a) != dpf.PodState(b) || dpf.PodReady(a) != dpf.PodReady(b) ||
		restarts(a) != restarts(b) || (a.DeletionTimestamp == nil) != (b.DeletionTimestamp == nil)
}

func restarts(p *corev1.Pod) int32 {
	var n int32
	for _, list := range [][]corev1.ContainerStatus{p.Status.InitContainerStatuses, p.Status.ContainerStatuses} {
		for _, c := range list {
			n += c.RestartCount
		}
	}
	return n
}

// Reconcile reads the cache, updates the metrics, diagnoses the failing
// pods, records events and, in repair mode, repairs.
func (r *reconciler) Reconcile(ctx context.Context, _ reconcile.Request) (reconcile.Result, error) {
	defer func(start time.Time) { r.opts.OnReconcile(time.Since(start)) }(time.Now())
	s, err := r.read(ctx)
	if errors.Is(err, errNotSynced) {
		return reconcile.Result{RequeueAfter: time.Second}, nil
	}
	if err != nil {
		return reconcile.Result{}, err
	}
	polled, err := r.addPerDPUPods(ctx, s)
	if err != nil {
		return reconcile.Result{}, err
	}
	r.metrics.setPods(s)
	r.tracker.update(s, r.recordRecovered)
	if s.config == nil {
		setCounts(r.metrics.findings, nil)
		r.log.Info("no DPFOperatorConfig in the namespace: DPF is not installed here, nothing to guard", "namespace", r.opts.Namespace)
		return reconcile.Result{}, nil
	}
	paused := r.notePause(s.config)
	var (
		fails []failingPod
		after time.Duration // when to look again; zero: on the next change
	)
	for _, p := range s.pods {
		if bad, until := failing(p, s.now, r.opts.StartupGrace); bad {
			ev := evidence.PodFrom(p)
			fails = append(fails, failingPod{obj: p, ev: ev, sig: ev.Signature(), restarts: restarts(p)})
		} else if !until.IsZero() {
			after = sooner(after, until.Sub(s.now)+time.Second)
		}
	}
	fresh, waiting := r.tracker.split(fails, rbacState(s.rbac), s.now)
	b, err := r.bundle(ctx, s, fresh)
	if err != nil {
		return reconcile.Result{}, err
	}
	if err := r.checkUpgrade(ctx, s, b); err != nil {
		return reconcile.Result{}, err
	}
	d := diagnose.Diagnose(b)
	r.setFindings(d, s, waiting)
	r.recordDiagnoses(fresh, d)
	if polled {
		after = sooner(after, perDPUPoll)
	}
	if r.opts.Mode == ModeRepair && !paused {
		wait, err := r.repair.run(ctx, s, b, d)
		if err != nil {
			return reconcile.Result{}, err
		}
		after = sooner(after, wait)
	}
	return reconcile.Result{RequeueAfter: after}, nil
}

// sooner is the earlier of two delays, of which zero means never.
func sooner(a, b time.Duration) time.Duration {
	if a == 0 || (b > 0 && b < a) {
		return b
	}
	return a
}

// bundle builds the evidence for the failing pods from the cache, plus what
// the fetcher remembers or reads.
func (r *reconciler) bundle(ctx context.Context, s *snapshot, fails []failingPod) (*evidence.Bundle, error) {
	b := &evidence.Bundle{
		SchemaVersion: evidence.SchemaVersion,
		CollectedAt:   s.now.UTC().Format(time.RFC3339),
		Install:       evidence.InstallFrom(r.opts.Namespace, s.config, s.pods),
		RBAC:          evidence.ManagedRBAC(s.rbac.Roles, s.rbac.RoleBindings),
		Gaps: []evidence.Gap{{What: "secrets", Reason: "the guard never reads Secrets",
			Impact: "whether a node's server Secret exists is judged from FailedMount events"}},
	}
	r.crd.fill(ctx, r.clients, &b.Install, r.log)
	names := sets.New[string]()
	for _, f := range fails {
		b.Pods = append(b.Pods, f.ev)
		if f.ev.Node != "" {
			names.Insert(f.ev.Node)
		}
	}
	var err error
	if b.Nodes, err = r.nodes(ctx, sets.List(names)); err != nil {
		return nil, err
	}
	if len(fails) == 0 {
		return b, nil
	}
	start := r.clients.Budget.Used()
	if err := r.fetch.fill(ctx, b, fails, rbacState(s.rbac)); err != nil {
		return nil, fmt.Errorf("read evidence: %w", err)
	}
	b.Requests = r.clients.Budget.Used() - start
	return b, nil
}

// rbacState identifies the state of dpfdoctor's RBAC objects: what access
// reviews and logs were read against.
func rbacState(m evidence.RBAC) string {
	var parts []string
	for _, o := range m.Roles {
		parts = append(parts, "Role/"+o.Name+"@"+o.ResourceVersion)
	}
	for _, o := range m.RoleBindings {
		parts = append(parts, "RoleBinding/"+o.Name+"@"+o.ResourceVersion)
	}
	sort.Strings(parts)
	return strings.Join(parts, ";")
}

// Event reasons the guard records.
const (
	// ReasonDiagnosed (Warning, on the pod): "<class>: <next step>", once per
	// pod and diagnosis.
	ReasonDiagnosed = "DPFDoctorDiagnosed"
	// ReasonRepaired (Normal, on each pod the repair answers): what was
	// granted, and where.
	ReasonRepaired = "DPFDoctorRepaired"
	// ReasonRestored (Normal, on the restored object, or the
	// DPFOperatorConfig for cluster-scoped ones): a deleted or altered grant
	// was put back.
	ReasonRestored = "DPFDoctorRestored"
	// ReasonRecovered (Normal, on the pod): Ready again, and how long it took.
	ReasonRecovered = "DPFDoctorRecovered"
	// ReasonRepairFailed and ReasonRepairRefused (Warning, on the
	// DPFOperatorConfig): a repair that could not be written, or that the
	// policy refused.
	ReasonRepairFailed  = "DPFDoctorRepairFailed"
	ReasonRepairRefused = "DPFDoctorRepairRefused"
	// ReasonGuardPaused and ReasonGuardResumed (Normal, on the
	// DPFOperatorConfig): its apply.GuardPausedAnnotation was set (the note
	// carries its value: the acknowledgement rollback waits for) or removed.
	ReasonGuardPaused  = apply.ReasonGuardPaused
	ReasonGuardResumed = "DPFDoctorGuardResumed"
)

// event records an events.k8s.io/v1 Event; action is what the guard did.
// The message is clipped to maxMessage, which the API server accepts.
func (r *reconciler) event(obj runtime.Object, typ, reason, action, msg string) {
	if len(msg) > maxMessage {
		msg = msg[:maxMessage-3] + "..."
	}
	r.recorder.Eventf(obj, nil, typ, reason, action, "%s", msg)
}

// notePause follows the DPFOperatorConfig's apply.GuardPausedAnnotation and
// reports whether repairs are paused. Each change is recorded as an Event
// and in dpfdoctor_guard_paused. A pause also makes the repairer forget the
// grant it remembered, so a resumed guard adopts what it finds and does not
// undo the rollback that paused it.
func (r *reconciler) notePause(cfg *unstructured.Unstructured) bool {
	v := cfg.GetAnnotations()[apply.GuardPausedAnnotation]
	if v == r.paused {
		return v != ""
	}
	r.paused = v
	if v == "" {
		r.metrics.paused.Set(0)
		r.event(cfg, corev1.EventTypeNormal, ReasonGuardResumed, "Resume", "repairs resumed: the annotation "+apply.GuardPausedAnnotation+" was removed")
		r.log.Info("repairs resumed")
		return false
	}
	r.metrics.paused.Set(1)
	r.repair = newRepairer(r)
	r.event(cfg, corev1.EventTypeNormal, ReasonGuardPaused, "Pause", fmt.Sprintf(
		"repairs paused by the annotation %s=%s; diagnosis continues. Remove the annotation to resume", apply.GuardPausedAnnotation, v))
	r.log.Info("repairs paused", "by", v)
	return true
}

const maxMessage = 1000

// recordDiagnoses records DPFDoctorDiagnosed on each failing pod whose
// diagnosis is new.
func (r *reconciler) recordDiagnoses(fails []failingPod, d *diagnose.Diagnosis) {
	byName := make(map[string]*corev1.Pod, len(fails))
	for _, f := range fails {
		byName[f.obj.Name] = f.obj
	}
	for _, pr := range d.Pods {
		p, ok := byName[pr.Name]
		if !ok || pr.Class == diagnose.ClassHealthy {
			continue
		}
		// The finding that gives the pod its primary class.
		i := slices.IndexFunc(d.Findings, func(f diagnose.Finding) bool { return f.Class == pr.Class && slices.Contains(f.Pods, pr.Name) })
		if i < 0 || !r.tracker.report(p.UID, string(pr.Class)+"|"+pr.Code) {
			continue
		}
		r.event(p, corev1.EventTypeWarning, ReasonDiagnosed, "Diagnose", fmt.Sprintf("%s: %s", pr.Class, r.nextStep(d.Findings[i])))
		r.log.Info("diagnosed", "pod", p.Name, "state", pr.State, "class", pr.Class, "code", pr.Code)
	}
}

// nextStep is the finding's next step; in repair mode, for what a grant
// fixes, the step is the guard's own.
func (r *reconciler) nextStep(f diagnose.Finding) string {
	if r.opts.Mode == ModeRepair && f.Fixable && len(f.Missing) > 0 {
		return fmt.Sprintf("%s; dpfdoctor guard grants the missing permissions now (see the %s event)", f.Summary, ReasonRepaired)
	}
	return f.NextStep
}

// recordRecovered observes time to Ready and records DPFDoctorRecovered.
func (r *reconciler) recordRecovered(p *corev1.Pod, after time.Duration) {
	r.metrics.timeToReady.Observe(after.Seconds())
	r.event(p, corev1.EventTypeNormal, ReasonRecovered, "Recover", fmt.Sprintf("Ready %.1fs after dpfdoctor guard saw it fail", after.Seconds()))
	r.log.Info("recovered", "pod", p.Name, "seconds", after.Seconds())
}

// setPods sets dpfdoctor_dms_pods{state} from the cache.
func (m *metrics) setPods(s *snapshot) {
	counts := map[string]int{}
	for i := range s.pods {
		counts[dpf.PodState(s.pods[i])]++
	}
	setCounts(m.pods, counts)
}

// setFindings sets dpfdoctor_findings{class}: the diagnosed pods by primary
// class, the pods awaiting a retry by their last class, and the Ready pods
// as Healthy.
func (r *reconciler) setFindings(d *diagnose.Diagnosis, s *snapshot, waiting []failingPod) {
	counts := map[string]int{}
	for _, f := range waiting {
		counts[r.tracker.class(f.obj.UID)]++
	}
	for _, pr := range d.Pods {
		if pr.Class != diagnose.ClassHealthy {
			counts[string(pr.Class)]++
		}
	}
	for i := range s.pods {
		if dpf.PodReady(s.pods[i]) {
			counts[string(diagnose.ClassHealthy)]++
		}
	}
	setCounts(r.metrics.findings, counts)
}

// ReasonUpgradeCheck (Warning, on the DPFOperatorConfig): the version the
// installation reports changed, and preflight's check for it finds what
// will break (docs/preflight.md).
const ReasonUpgradeCheck = "DPFDoctorUpgradeCheck"

// MetricUpgradeFindings is preflight's check for the reported version, by
// finding code.
const MetricUpgradeFindings = "dpfdoctor_upgrade_findings"

// checkUpgrade runs preflight's check (RBAC as the operator re-applies it,
// from the cache) whenever the reported version changes: it sets
// dpfdoctor_upgrade_findings and, when something will break, records
// DPFDoctorUpgradeCheck. It reads the DPUDevice CRD again then, since an
// upgrade is when it changes.
func (r *reconciler) checkUpgrade(ctx context.Context, s *snapshot, b *evidence.Bundle) error {
	v := b.Install.Version
	if v == "" || v == r.checkedVersion {
		return nil
	}
	target, err := dpf.Lookup(v)
	if err != nil {
		r.checkedVersion = v
		return nil
	}
	after := *b
	if r.checkedVersion != "" { // the bundle has just read it at the first check
		r.crd.done = false
		r.crd.fill(ctx, r.clients, &after.Install, r.log)
	}
	// The guard reads neither Issuers nor Certificates.
	after.Gaps = append(slices.Clone(b.Gaps), evidence.Gap{What: "issuers", Reason: "the guard does not read Issuers", Impact: "Issuer readiness is not checked"})
	rep, err := preflight.Evaluate(preflight.Input{Bundle: &after, Target: target},
		preflight.Local(preflight.AfterUpgrade(&after, target, nil, preflight.RBACRelease)))
	if err != nil {
		return fmt.Errorf("upgrade check for %s: %w", v, err)
	}
	r.checkedVersion = v
	r.metrics.upgrade.Reset()
	for _, code := range []string{preflight.CodeCRD, preflight.CodeRBAC, preflight.CodeAPIServer, preflight.CodePaused} {
		r.metrics.upgrade.WithLabelValues(v, code).Set(0)
	}
	var msgs []string
	for _, f := range rep.Findings {
		r.metrics.upgrade.WithLabelValues(v, f.Code).Inc()
		msgs = append(msgs, f.Code+": "+f.Summary+" Next: "+f.Before)
	}
	if len(msgs) > 0 && s.config != nil {
		r.event(s.config, corev1.EventTypeWarning, ReasonUpgradeCheck, "UpgradeCheck", fmt.Sprintf("DPF %s: %s", v, strings.Join(msgs, " | ")))
		r.log.Info("upgrade check: something will break", "version", v, "findings", len(msgs))
	}
	return nil
}

// crdInfo reads the DPUDevice CRD at the first reconcile and again on a
// version change, one GET by name: the diagnosis asks whether DPUDevice has
// a status subresource (v25.7 on).
type crdInfo struct{ done, found, statusSubres bool }

func (c *crdInfo) fill(ctx context.Context, cl *kube.Clients, in *evidence.Install, log logr.Logger) {
	if !c.done {
		crd, err := cl.Dynamic.Resource(evidence.CRDGVR).Get(ctx, evidence.DPUDeviceCRDName(), metav1.GetOptions{})
		switch {
		case err == nil:
			c.done, c.found, c.statusSubres = true, true, evidence.HasStatusSubresource(crd)
		case apierrors.IsNotFound(err), apierrors.IsForbidden(err):
			c.done = true
		default:
			log.Info("could not read the DPUDevice CRD; will retry", "error", err.Error())
		}
	}
	in.DPUDeviceCRD, in.DPUDeviceStatusSubresource = c.found, c.statusSubres
}
