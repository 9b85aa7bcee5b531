package guard

import (
	"context"
	"fmt"
	"strings"

	authorizationv1 "k8s.io/api/authorization/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/dpfdoctor/dpfdoctor/internal/access"
	"github.com/dpfdoctor/dpfdoctor/internal/evidence"
	"github.com/dpfdoctor/dpfdoctor/internal/kube"
)

// fillAccess answers each distinct call pattern of the failing pods with one
// SubjectAccessReview for a representative node, remembered until
// dpfdoctor's RBAC changes, and derives per-node answers from dpfdoctor's
// name-restricted grants, as the collector does.
func (f *fetcher) fillAccess(ctx context.Context, b *evidence.Bundle) error {
	var failing []evidence.Pod
	for _, p := range b.Pods {
		if !p.Ready {
			failing = append(failing, p)
		}
	}
	set := b.RBAC.Set()
	checks, err := evidence.Answer(evidence.AccessPatterns(failing, b.Install.Version), 1, func(p evidence.Pattern) (evidence.AccessCheck, error) {
		check := p.Question(set)
		ans, err := f.review(ctx, p.Key, check)
		if err != nil {
			return check, err
		}
		check.Method, check.Allowed, check.Reason, check.Error = evidence.MethodReview, ans.allowed, ans.reason, ans.err
		if !check.Allowed {
			check.NodeOverrides = p.Overrides(set)
		}
		return check, nil
	})
	if err != nil {
		return err
	}
	b.Access = append(b.Access, checks...)
	if f.reviewsDenied {
		req := access.Request{Verb: "create", Group: authorizationv1.GroupName, Resource: "subjectaccessreviews"}
		b.Gaps = append(b.Gaps, evidence.Gap{What: "subjectaccessreviews", Request: &req, Reason: "forbidden: " + req.String(),
			Impact: "what the pods' ServiceAccount may do is not checked; RBAC problems are found only from Forbidden lines in logs"})
	}
	return nil
}

// review asks the API server once per question and RBAC state.
func (f *fetcher) review(ctx context.Context, checkKey string, c evidence.AccessCheck) (review, error) {
	key := checkKey + "|" + c.Request.Name
	if r, ok := f.reviews[key]; ok {
		return r, nil
	}
	if f.reviewsDenied {
		return review{err: "not asked: creating SubjectAccessReviews is forbidden"}, nil
	}
	res, err := f.kube.AuthorizationV1().SubjectAccessReviews().Create(ctx, c.Request.SubjectAccessReview(c.Subject), metav1.CreateOptions{})
	var r review
	switch {
	case apierrors.IsForbidden(err):
		f.reviewsDenied = true
		return review{err: "forbidden: create subjectaccessreviews.authorization.k8s.io"}, nil
	case err != nil && fatal(err):
		return review{}, fmt.Errorf("review %s: %w", c.Request, kube.Classify(err))
	case err != nil:
		r.err = err.Error()
	default:
		r.allowed, r.reason = res.Status.Allowed, res.Status.Reason
		if res.Status.EvaluationError != "" {
			r.reason = strings.TrimSpace(r.reason + " (evaluation error: " + res.Status.EvaluationError + ")")
		}
	}
	f.reviews[key] = r
	return r, nil
}
