package guard

import (
	"context"

	"github.com/dpfdoctor/dpfdoctor/internal/evidence"
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
		b.Gaps = append(b.Gaps, evidence.ReviewsRefused())
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
		return review{err: evidence.NotAsked}, nil
	}
	refused, err := evidence.Review(ctx, f.kube, &c)
	r := review{allowed: c.Allowed, reason: c.Reason, err: c.Error}
	switch {
	case err != nil:
		return review{}, err
	case refused:
		f.reviewsDenied = true
	default:
		f.reviews[key] = r
	}
	return r, nil
}
