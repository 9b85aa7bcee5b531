package apply

import (
	"cmp"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/yaml"

	"github.com/dpfdoctor/dpfdoctor/internal/plan"
)

// Backup layout, under <root>/<UTC timestamp>/:
//
//	manifest.json   what was backed up: each target's pre-state file and hash, or its absence
//	plan.yaml       the plan that was applied
//	objects/*.json  pre-state of each target that existed (0600)
//	receipt.json    what was done: objects applied, annotations set, status
//	report.md, report.json   written by the fix command
const (
	ManifestFile    = "manifest.json"
	PlanFile        = "plan.yaml"
	ReceiptFile     = "receipt.json"
	objectsDir      = "objects"
	backupSchema    = "dpfdoctor.dev/backup/v1alpha1"
	dirMode         = 0o700
	timestampFormat = "20060102T150405Z"
)

// DefaultRoot is where backups go unless told otherwise.
const DefaultRoot = "dpfdoctor-backups"

// ErrBadBackup is returned for a backup directory that is missing,
// incomplete or was altered since it was written.
var ErrBadBackup = errors.New("invalid backup")

// Manifest describes a backup.
type Manifest struct {
	SchemaVersion string  `json:"schemaVersion"`
	PlanID        string  `json:"planID"`
	CreatedAt     string  `json:"createdAt"`
	Server        string  `json:"server"` // the API server the backup was taken from
	Namespace     string  `json:"namespace"`
	Objects       []Entry `json:"objects"`
	PlanSHA256    string  `json:"planSHA256"` // the hash of plan.yaml
}

// Entry is one target object's pre-state.
type Entry struct {
	Ref     plan.ObjectRef `json:"ref"`
	Existed bool           `json:"existed"` // false when the object was absent before the apply
	// File is the pre-state's path relative to the backup, and SHA256 its
	// hash; both empty when the object was absent.
	File   string `json:"file,omitempty"`
	SHA256 string `json:"sha256,omitempty"`
}

// Receipt statuses.
const (
	StatusPlanned          = "planned"
	StatusApplying         = "applying"
	StatusApplied          = "applied"
	StatusRolledBack       = "rolled-back"
	StatusFailedRolledBack = "failed-rolled-back"
	StatusRollbackFailed   = "rollback-incomplete"
)

// Receipt records what one fix did, as it happened.
type Receipt struct {
	SchemaVersion string `json:"schemaVersion"`
	PlanID        string `json:"planID"`
	Status        string `json:"status"`
	// Applied lists each object written and how: created, updated or
	// unchanged.
	Applied []Applied `json:"applied,omitempty"`
	// Annotations lists annotations set on objects dpfdoctor does not own
	// (Nodes, the DPFOperatorConfig), with their previous values.
	Annotations []AnnotationChange `json:"annotations,omitempty"`
	Error       string             `json:"error,omitempty"` // the error that stopped the apply, if any
	UpdatedAt   string             `json:"updatedAt"`
}

// Applied is one object written by the apply.
type Applied struct {
	Ref    plan.ObjectRef `json:"ref"`
	Action string         `json:"action"`
}

// Apply actions.
const (
	ActionCreated   = "created"
	ActionUpdated   = "updated"
	ActionUnchanged = "unchanged"
)

// AnnotationChange is one annotation dpfdoctor set.
type AnnotationChange = plan.AnnotationChange

// Backup is one fix run's backup directory and its journal. The directory
// is created on first need; a plan that changes nothing leaves none.
type Backup struct {
	Dir string // the backup directory, set once created

	root    string
	plan    *plan.Plan
	server  string
	now     func() time.Time
	mu      sync.Mutex
	pre     map[plan.ObjectRef]*unstructured.Unstructured
	receipt Receipt
}

// NewBackup prepares a backup under root for p, taken from server.
func NewBackup(root string, p *plan.Plan, server string, now func() time.Time) *Backup {
	root = cmp.Or(root, DefaultRoot)
	if now == nil {
		now = time.Now
	}
	return &Backup{root: root, plan: p, server: server, now: now,
		receipt: Receipt{SchemaVersion: backupSchema, PlanID: p.ID, Status: StatusPlanned}}
}

// Created reports whether the directory exists.
func (b *Backup) Created() bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.Dir != ""
}

// Receipt returns a copy of the journal.
func (b *Backup) Receipt() Receipt {
	b.mu.Lock()
	defer b.mu.Unlock()
	r := b.receipt
	r.Applied, r.Annotations = slices.Clone(r.Applied), slices.Clone(r.Annotations)
	return r
}

// create makes the directory and writes the plan and the pre-states of the
// targets (nil for an absent one). Call with b.mu held.
func (b *Backup) create(pre map[plan.ObjectRef]*unstructured.Unstructured) error {
	if b.Dir != "" {
		return nil
	}
	if err := os.MkdirAll(b.root, dirMode); err != nil {
		return fmt.Errorf("create backup root: %w", err)
	}
	ts := b.now().UTC()
	var dir string
	for i := 0; ; i++ {
		dir = filepath.Join(b.root, ts.Format(timestampFormat))
		if i > 0 {
			dir = fmt.Sprintf("%s-%d", dir, i)
		}
		err := os.Mkdir(dir, dirMode)
		if err == nil {
			break
		}
		if !errors.Is(err, os.ErrExist) || i > 100 {
			return fmt.Errorf("create backup directory: %w", err)
		}
	}
	if err := os.Mkdir(filepath.Join(dir, objectsDir), dirMode); err != nil {
		return fmt.Errorf("create backup directory: %w", err)
	}
	planYAML, err := yaml.Marshal(b.plan)
	if err != nil {
		return fmt.Errorf("back up plan: %w", err)
	}
	if err := writeFile(filepath.Join(dir, PlanFile), planYAML); err != nil {
		return err
	}
	m := Manifest{SchemaVersion: backupSchema, PlanID: b.plan.ID, CreatedAt: ts.Format(time.RFC3339), Server: b.server,
		Namespace: b.plan.Namespace, PlanSHA256: sum(planYAML)}
	for _, c := range b.plan.Changes {
		e := Entry{Ref: c.Ref()}
		if obj := pre[e.Ref]; obj != nil {
			e.Existed, e.File = true, filepath.Join(objectsDir, fileName(e.Ref))
			if e.SHA256, err = saveJSON(filepath.Join(dir, e.File), plan.Clean(obj).Object); err != nil {
				return fmt.Errorf("back up %s: %w", e.Ref, err)
			}
		}
		m.Objects = append(m.Objects, e)
	}
	if _, err := saveJSON(filepath.Join(dir, ManifestFile), m); err != nil {
		return err
	}
	b.Dir = dir
	return b.saveLocked()
}

// Ensure creates the backup directory if it does not exist yet. For a
// plan with changes, Apply must have observed the targets first.
func (b *Backup) Ensure() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.Dir != "" {
		return nil
	}
	if len(b.plan.Changes) > 0 && b.pre == nil {
		return errors.New("back up: the targets' pre-state has not been read")
	}
	return b.create(b.pre)
}

// record journals annotations about to be set, before they are
// set, so that rollback can undo them even if the run dies right after. For
// an annotation journalled before, the first previous value is kept.
func (b *Backup) record(changes ...plan.AnnotationChange) error {
	for _, c := range changes {
		if !strings.HasPrefix(c.Key, plan.AnnotationPrefix) {
			return fmt.Errorf("annotation %q is not a dpfdoctor annotation", c.Key)
		}
	}
	if err := b.Ensure(); err != nil {
		return err
	}
	return b.update(func(r *Receipt) {
		for _, c := range changes {
			if i := slices.IndexFunc(r.Annotations, func(a AnnotationChange) bool { return a.Ref == c.Ref && a.Key == c.Key }); i >= 0 {
				r.Annotations[i].Value = c.Value
			} else {
				r.Annotations = append(r.Annotations, c)
			}
		}
	})
}

func (b *Backup) setStatus(status, errText string) error {
	return b.update(func(r *Receipt) { r.Status, r.Error = status, errText })
}

// update changes the journal and saves it.
func (b *Backup) update(fn func(*Receipt)) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	fn(&b.receipt)
	return b.saveLocked()
}

func (b *Backup) saveLocked() error {
	if b.Dir == "" {
		return nil
	}
	b.receipt.UpdatedAt = b.now().UTC().Format(time.RFC3339)
	return saveReceipt(b.Dir, b.receipt)
}

func saveReceipt(dir string, r Receipt) error {
	_, err := saveJSON(filepath.Join(dir, ReceiptFile), r)
	return err
}

// saveJSON writes v as indented JSON with writeFile and returns its hash.
func saveJSON(path string, v any) (string, error) {
	data, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return "", fmt.Errorf("encode %s: %w", filepath.Base(path), err)
	}
	return sum(data), writeFile(path, data)
}

// writeFile writes atomically (temporary file, then rename) with mode 0600,
// the mode os.CreateTemp gives.
func writeFile(path string, data []byte) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), ".tmp-*")
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	// After the rename there is nothing left to remove.
	defer func() { _ = os.Remove(tmp.Name()) }()
	_, err = tmp.Write(data)
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp.Name(), path)
	}
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}

func sum(data []byte) string {
	h := sha256.Sum256(data)
	return hex.EncodeToString(h[:])
}

func fileName(r plan.ObjectRef) string {
	parts := []string{strings.ToLower(r.Kind)}
	if r.Namespace != "" {
		parts = append(parts, r.Namespace)
	}
	return strings.Join(append(parts, r.Name), "_") + ".json"
}

// Latest returns the newest backup directory under root.
func Latest(root string) (string, error) {
	root = cmp.Or(root, DefaultRoot)
	entries, err := os.ReadDir(root)
	if err != nil {
		return "", fmt.Errorf("%w: no backups under %s: %v", ErrBadBackup, root, err)
	}
	slices.SortFunc(entries, func(a, b os.DirEntry) int { return compareBackupNames(a.Name(), b.Name()) })
	for _, e := range slices.Backward(entries) {
		if _, err := os.Stat(filepath.Join(root, e.Name(), ManifestFile)); e.IsDir() && err == nil {
			return filepath.Join(root, e.Name()), nil
		}
	}
	return "", fmt.Errorf("%w: no backups under %s", ErrBadBackup, root)
}

// compareBackupNames orders backup directory names as they were created:
// by UTC timestamp, then by the counter create appends within a second
// ("…Z", "…Z-1", …, "…Z-10").
func compareBackupNames(a, b string) int {
	key := func(s string) (string, int) {
		ts, n, ok := strings.Cut(s, "-")
		i, err := strconv.Atoi(n)
		if !ok || err != nil {
			return s, 0
		}
		return ts, i
	}
	at, ai := key(a)
	bt, bi := key(b)
	return cmp.Or(strings.Compare(at, bt), cmp.Compare(ai, bi))
}
