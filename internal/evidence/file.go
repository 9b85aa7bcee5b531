package evidence

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"regexp"
	"sort"
	"strings"
	"time"

	"sigs.k8s.io/yaml"
)

// ErrMalformed is returned by Load for a file that is not an evidence Bundle.
var ErrMalformed = errors.New("malformed evidence bundle")

// Load reads a Bundle saved as JSON, or written as YAML by hand for tests. A file that is not a Bundle yields ErrMalformed.
func Load(file string) (*Bundle, error) {
	data, err := os.ReadFile(file)
	if err != nil {
		return nil, fmt.Errorf("load evidence: %w", err)
	}
	return Parse(data)
}

// Parse decodes a Bundle from JSON or YAML. Unknown fields are refused, so a
// typo in a hand-written fixture does not pass silently.
func Parse(data []byte) (*Bundle, error) {
	var b Bundle
	if trimmed := bytes.TrimSpace(data); len(trimmed) > 0 && trimmed[0] == '{' {
		dec := json.NewDecoder(bytes.NewReader(trimmed))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&b); err != nil {
			return nil, fmt.Errorf("%w: %v", ErrMalformed, err)
		}
	} else if err := yaml.UnmarshalStrict(data, &b); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrMalformed, err)
	}
	if b.SchemaVersion != SchemaVersion {
		return nil, fmt.Errorf("%w: schemaVersion %q, want %q", ErrMalformed, b.SchemaVersion, SchemaVersion)
	}
	return &b, nil
}

// ArchiveFile is an extra file for WriteArchive, such as the diagnosis.
type ArchiveFile struct {
	Name string
	Data []byte
}

// WriteArchive writes a support bundle: a gzipped tar with evidence.json,
// logs/<pod>/<container>.<instance>.log, rbac.yaml, events.json and the extra
// files. It holds no Secret data, because the Bundle holds none.
func (b *Bundle) WriteArchive(w io.Writer, extra ...ArchiveFile) error {
	gz := gzip.NewWriter(w)
	tw := tar.NewWriter(gz)
	files, err := b.archiveFiles()
	if err != nil {
		return err
	}
	files = append(files, extra...)
	now := time.Now()
	for _, f := range files {
		hdr := &tar.Header{Name: f.Name, Mode: 0o600, Size: int64(len(f.Data)), ModTime: now, Typeflag: tar.TypeReg}
		if err = tw.WriteHeader(hdr); err == nil {
			_, err = tw.Write(f.Data)
		}
		if err != nil {
			return fmt.Errorf("write support bundle: %w", err)
		}
	}
	if err := tw.Close(); err != nil {
		return fmt.Errorf("write support bundle: %w", err)
	}
	if err := gz.Close(); err != nil {
		return fmt.Errorf("write support bundle: %w", err)
	}
	return nil
}

// maxEvidenceJSON bounds how much ReadArchive reads of evidence.json.
const maxEvidenceJSON = 1 << 30

// ReadArchive reads the Bundle back from a support bundle written by
// WriteArchive.
func ReadArchive(r io.Reader) (*Bundle, error) {
	gz, err := gzip.NewReader(r)
	if err != nil {
		return nil, fmt.Errorf("%w: not a gzip file: %v", ErrMalformed, err)
	}
	defer func() { _ = gz.Close() }() // read side: every byte read was checked
	tr := tar.NewReader(gz)
	for {
		hdr, err := tr.Next()
		if err == io.EOF {
			return nil, fmt.Errorf("%w: no evidence.json in the archive", ErrMalformed)
		}
		if err != nil {
			return nil, fmt.Errorf("%w: %v", ErrMalformed, err)
		}
		if hdr.Name != "evidence.json" {
			continue
		}
		data, err := io.ReadAll(io.LimitReader(tr, maxEvidenceJSON))
		if err != nil {
			return nil, fmt.Errorf("%w: %v", ErrMalformed, err)
		}
		return Parse(data)
	}
}

var unsafeName = regexp.MustCompile(`[^A-Za-z0-9._-]`)

func (b *Bundle) archiveFiles() ([]ArchiveFile, error) {
	ev, err := json.MarshalIndent(b, "", "  ")
	if err != nil {
		return nil, fmt.Errorf("encode evidence: %w", err)
	}
	events, err := json.MarshalIndent(b.Events, "", "  ")
	if err != nil {
		return nil, fmt.Errorf("encode events: %w", err)
	}
	rbac, err := yaml.Marshal(b.RBAC)
	if err != nil {
		return nil, fmt.Errorf("encode rbac: %w", err)
	}
	files := []ArchiveFile{{"evidence.json", ev}, {"events.json", events}, {"rbac.yaml", rbac}}
	logs := append([]Log(nil), b.Logs...)
	sort.Slice(logs, func(i, j int) bool {
		return logs[i].Pod+"/"+logs[i].Container+"."+logs[i].Instance < logs[j].Pod+"/"+logs[j].Container+"."+logs[j].Instance
	})
	for _, l := range logs {
		text := l.Text
		if l.Error != "" {
			text = "# dpfdoctor could not read this log: " + l.Error + "\n" + text
		}
		name := path.Join("logs", unsafeName.ReplaceAllString(l.Pod, "_"),
			unsafeName.ReplaceAllString(l.Container, "_")+"."+unsafeName.ReplaceAllString(l.Instance, "_")+".log")
		files = append(files, ArchiveFile{name, []byte(text)})
	}
	return files, nil
}

// redact masks PEM blocks and long base64 runs in log text, in case a
// script ever echoes key material.
func redact(s string) string {
	s = pemBlock.ReplaceAllString(s, "[REDACTED PEM BLOCK]")
	return longBase64.ReplaceAllStringFunc(s, func(m string) string {
		if strings.ContainsAny(m, "+/=") || len(m) >= 120 {
			return "[REDACTED]"
		}
		return m
	})
}

var (
	pemBlock   = regexp.MustCompile(`(?s)-----BEGIN [A-Z ]+-----.*?(-----END [A-Z ]+-----|$)`)
	longBase64 = regexp.MustCompile(`[A-Za-z0-9+/]{64,}={0,2}`)
)
